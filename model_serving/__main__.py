"""``python -m model_serving``: run the forecasting service with uvicorn on the configured address."""

from __future__ import annotations

import logging
import os

import uvicorn

from core.settings import get_settings
from model_serving.metrics_mode import use_metrics_directory


def share_cores(threads: int | None) -> int:
    """Set the model libraries' thread count per worker (OpenMP), before any of them loads.

    One thread unless ``threads`` (or an ``OMP_NUM_THREADS`` already in the environment) says
    otherwise. A request forecasts one or a few rows: a second OpenMP thread for such a predict costs
    more CPU than it saves wall time (XGBoost, 24 steps of 120 trees: 1.3 ms of CPU for 0.67 ms on
    two threads, 1.0 ms for 1.0 ms on one), and the thread spins on the other core while it waits,
    the core the event loop, Redis and the forecast ledger's writer need. Parallelism comes from
    workers (``serving_workers``), as in other model servers.
    """
    inherited = os.environ.get("OMP_NUM_THREADS", "")
    if threads is None and inherited.isdigit() and int(inherited) > 0:
        return int(inherited)
    count = threads or 1
    os.environ["OMP_NUM_THREADS"] = str(count)
    return count


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    use_metrics_directory(settings.serving_workers, settings.serving_metrics_dir)
    share_cores(settings.inference_threads)
    uvicorn.run(
        "model_serving.app:create_app",
        factory=True,
        host=settings.serving_host,
        port=settings.serving_port,
        workers=settings.serving_workers,
        log_level="info",
        access_log=settings.serving_access_log,
    )


if __name__ == "__main__":
    main()
