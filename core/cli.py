"""Arguments every command shares: which dataset and which logical date."""

from __future__ import annotations

import argparse
import logging
from datetime import date

from core.dataset import DatasetConfig
from core.settings import Settings, get_settings


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help="dataset config YAML (default: the settings' dataset_config)", default=None)
    parser.add_argument(
        "--logical-date",
        type=date.fromisoformat,
        default=None,
        help="the run's logical date, YYYY-MM-DD (default: today)",
    )


PLATFORM_PACKAGES = (
    "core", "data_pipeline", "feature_drift", "feature_store", "model_bundle", "model_registry", "model_training",
    "model_validation", "monitoring",
)  # fmt: skip


def configure_logging() -> None:
    """The platform's own progress at INFO; libraries only when they warn."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for package in PLATFORM_PACKAGES:
        logging.getLogger(package).setLevel(logging.INFO)


def resolve(args: argparse.Namespace, check_sources: bool = False) -> tuple[Settings, DatasetConfig, date]:
    """Settings, dataset and date of a command; ``check_sources``: hold the dataset's sources against
    the whole source policy now (commands that read them), not only their form."""
    configure_logging()
    settings = get_settings()
    dataset = DatasetConfig.from_yaml(args.dataset or settings.dataset_config, settings if check_sources else None)
    return settings, dataset, args.logical_date or date.today()
