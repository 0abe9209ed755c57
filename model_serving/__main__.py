"""``python -m model_serving``: run the forecasting service with uvicorn on the configured address."""

from __future__ import annotations

import logging
import os

import uvicorn

from core.settings import get_settings
from model_serving.metrics_mode import use_metrics_directory


def share_cores(workers: int, threads: int | None) -> int:
    """Set the model libraries' thread count per worker (OpenMP), before any of them loads.

    Each worker predicts with its own thread pool; N workers each sized for the whole machine
    oversubscribe it, and OpenMP threads that spin while waiting take CPU from the event loops. So
    the CPUs are divided among the workers unless ``threads`` (or an ``OMP_NUM_THREADS`` already in the
    environment) says otherwise.
    """
    inherited = os.environ.get("OMP_NUM_THREADS", "")
    if threads is None and inherited.isdigit() and int(inherited) > 0:
        return int(inherited)
    count = threads or max(1, (os.cpu_count() or 1) // workers)
    os.environ["OMP_NUM_THREADS"] = str(count)
    return count


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    use_metrics_directory(settings.serving_workers, settings.serving_metrics_dir)
    share_cores(settings.serving_workers, settings.inference_threads)
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
