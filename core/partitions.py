"""Where each logical date's data lives: one partition per date, the same layout everywhere.

``<root>/<dataset>/ds=<date>/data.parquet`` for the landing area (raw data as known at the end of the
date) and the validated area (the landing partition once it passed the data-quality gate, the only
place features are built from). The roots are folders under home, or prefixes under
``MLOPS_LAKE_URI`` where tasks run in pods that share no filesystem; either way callers hold a
location string (:mod:`core.objects`). ``<artifacts>/<dataset>/ds=<date>/`` holds a date's reports
(always local: what a person reads, not what a later task needs). A partition is its data file: a
folder without one (a failed validation, a killed first write) is no partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from core.dataset import DatasetConfig
from core.objects import ObjectNotFoundError, ParquetRows, join, list_locations, read_parquet
from core.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

DATA_FILE = "data.parquet"
# Series per part where a stage works through many series a part at a time (features, training
# sets): each part is read, transformed and written before the next, so a process holds one part's
# rows and not every series' history.
SERIES_PER_PART = 500


def partition_dir(root: str | Path, dataset: DatasetConfig, logical_date: date) -> Path:
    """``<root>/<dataset>/ds=<date>`` of a local root: the one layout of every per-date folder."""
    return Path(root) / dataset.name / f"ds={logical_date.isoformat()}"


def partition_path(root: str | Path, dataset: DatasetConfig, logical_date: date) -> Path:
    return partition_dir(root, dataset, logical_date) / DATA_FILE


def partition_location(root: str, dataset: DatasetConfig, logical_date: date) -> str:
    """The data file of a date's partition under ``root``, a folder or an ``s3://`` prefix."""
    return join(root, dataset.name, f"ds={logical_date.isoformat()}", DATA_FILE)


def partition_dates(root: str | Path, dataset: DatasetConfig, settings: Settings) -> list[date]:
    """The logical dates that have a partition under ``root``, oldest first."""
    # A folder alone is no partition: a failed validation removes the file and a killed first write
    # leaves only its hidden temporary file behind.
    dates = set()
    for location in list_locations(join(str(root), dataset.name), settings):
        folder, _, name = location.rpartition("/")
        day = folder.rpartition("/")[2]
        if name == DATA_FILE and day.startswith("ds="):
            dates.add(date.fromisoformat(day.removeprefix("ds=")))
    return sorted(dates)


def landing_root(settings: Settings) -> str:
    return join(settings.lake_uri, "landing") if settings.lake_uri else str(settings.landing)


def validated_root(settings: Settings) -> str:
    return join(settings.lake_uri, "validated") if settings.lake_uri else str(settings.home / "validated")


def landing_path(settings: Settings, dataset: DatasetConfig, logical_date: date) -> str:
    return partition_location(landing_root(settings), dataset, logical_date)


def validated_path(settings: Settings, dataset: DatasetConfig, logical_date: date) -> str:
    return partition_location(validated_root(settings), dataset, logical_date)


def run_dir(settings: Settings, dataset: DatasetConfig, logical_date: date) -> Path:
    """The date's folder of reports under the (local) artifacts root."""
    return partition_dir(settings.artifacts, dataset, logical_date)


def state_location(settings: Settings, dataset: DatasetConfig, logical_date: date, name: str) -> str:
    """Where a date's step records what a later task (or a retry in another pod) checks: the data
    check's result, the online load's marker. In the date's report folder, or under the lake."""
    if settings.lake_uri:
        return join(settings.lake_uri, "state", dataset.name, f"ds={logical_date.isoformat()}", name)
    return str(run_dir(settings, dataset, logical_date) / name)


def _read_partition(path: str, settings: Settings, missing: str) -> pd.DataFrame:
    try:
        return read_parquet(path, settings)
    except ObjectNotFoundError as exc:
        raise FileNotFoundError(f"{missing} ({path})") from exc


def read_landed(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    missing = f"no landing partition for {dataset.name} on {logical_date}: run ingest first"
    return _read_partition(landing_path(settings, dataset, logical_date), settings, missing)


def _no_validated(dataset: DatasetConfig, logical_date: date) -> str:
    return f"no validated data for {dataset.name} on {logical_date}: run validate first"


def read_validated(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    path = validated_path(settings, dataset, logical_date)
    return _read_partition(path, settings, _no_validated(dataset, logical_date))


def validated_rows(settings: Settings, dataset: DatasetConfig, logical_date: date) -> ParquetRows:
    """The validated partition of ``logical_date``, to be read a part at a time."""
    path = validated_path(settings, dataset, logical_date)
    try:
        return ParquetRows(path, settings)
    except ObjectNotFoundError as exc:
        raise FileNotFoundError(f"{_no_validated(dataset, logical_date)} ({path})") from exc


def validated_parts(
    settings: Settings, dataset: DatasetConfig, logical_date: date, per_part: int = SERIES_PER_PART
) -> Iterator[pd.DataFrame]:
    """The validated rows of ``per_part`` series at a time, the series in order of their names: each
    part read from the row groups that hold it (:class:`core.objects.ParquetRows`)."""
    yield from validated_rows(settings, dataset, logical_date).parts(dataset.entity_column, per_part)


def latest_validated_date(settings: Settings, dataset: DatasetConfig) -> date:
    """The newest date with a validated partition (what the daily jobs judge)."""
    dates = partition_dates(validated_root(settings), dataset, settings)
    if not dates:
        raise FileNotFoundError(f"no validated data for {dataset.name}: run the retraining DAG first")
    return dates[-1]
