"""``python -m model_serving``: run the forecasting service with uvicorn on the configured address."""

from __future__ import annotations

import logging

import uvicorn

from configs.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(
        "model_serving.app:create_app",
        factory=True,
        host=settings.serving_host,
        port=settings.serving_port,
        workers=settings.serving_workers,
        log_level="info",
    )


if __name__ == "__main__":
    main()
