"""``python -m forecast_store upgrade``: bring the forecast table of the settings' database
(``MLOPS_FORECAST_DB``) to the newest migration; a deploy step, safe to run again."""

from __future__ import annotations

import argparse
import sys

from core.cli import configure_logging
from core.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forecast_store", description=__doc__)
    parser.add_argument("command", choices=["upgrade"])
    parser.parse_args(argv)
    configure_logging()
    from forecast_store import store

    settings = get_settings()
    store.upgrade(settings)
    print(f"forecast table at the newest migration: {settings.forecast_store_url.split('@')[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
