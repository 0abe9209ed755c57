"""Where each logical date's data lives: one partition folder per date, the same layout everywhere.

``<root>/<dataset>/ds=<date>/data.parquet`` for the landing area (raw data as known at the end of the
date) and the validated area (the landing partition once it passed the data-quality gate, the only
place features are built from); ``<artifacts>/<dataset>/ds=<date>/`` holds a date's reports and run
outputs. A partition is its data file: a folder without one (a failed validation, a killed first
write) is no partition.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from core.dataset import DatasetConfig
from core.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

DATA_FILE = "data.parquet"


def partition_dir(root: Path, dataset: DatasetConfig, logical_date: date) -> Path:
    """``<root>/<dataset>/ds=<date>``: the one layout of every per-date folder (landing, validated, artifacts)."""
    return root / dataset.name / f"ds={logical_date.isoformat()}"


def partition_path(root: Path, dataset: DatasetConfig, logical_date: date) -> Path:
    return partition_dir(root, dataset, logical_date) / DATA_FILE


def partition_dates(root: Path, dataset: DatasetConfig) -> list[date]:
    """The logical dates that have a partition under ``root``, oldest first."""
    folder = root / dataset.name
    # A folder alone is no partition: a failed validation removes the file and a killed first write
    # leaves only its hidden temporary file behind.
    return sorted(
        date.fromisoformat(p.name.removeprefix("ds=")) for p in folder.glob("ds=*") if (p / DATA_FILE).is_file()
    )


def landing_path(settings: Settings, dataset: DatasetConfig, logical_date: date) -> Path:
    return partition_path(settings.landing, dataset, logical_date)


def validated_root(settings: Settings) -> Path:
    return settings.home / "validated"


def validated_path(settings: Settings, dataset: DatasetConfig, logical_date: date) -> Path:
    return partition_path(validated_root(settings), dataset, logical_date)


def run_dir(settings: Settings, dataset: DatasetConfig, logical_date: date) -> Path:
    """The date's folder of reports and run outputs under the artifacts root."""
    return partition_dir(settings.artifacts, dataset, logical_date)


def read_landed(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    import pandas as pd

    path = landing_path(settings, dataset, logical_date)
    if not path.exists():
        raise FileNotFoundError(f"no landing partition for {dataset.name} on {logical_date}: run ingest first ({path})")
    return pd.read_parquet(path)


def read_validated(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    import pandas as pd

    path = validated_path(settings, dataset, logical_date)
    if not path.exists():
        raise FileNotFoundError(f"no validated data for {dataset.name} on {logical_date}: run validate first ({path})")
    return pd.read_parquet(path)


def latest_validated_date(settings: Settings, dataset: DatasetConfig) -> date:
    """The newest date with a validated partition (what the daily jobs judge)."""
    dates = partition_dates(validated_root(settings), dataset)
    if not dates:
        raise FileNotFoundError(f"no validated data for {dataset.name}: run the retraining DAG first")
    return dates[-1]
