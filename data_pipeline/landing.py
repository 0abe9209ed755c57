"""The landing area: raw data as parquet, one partition per logical date.

A partition holds the source as it was known at the end of its logical date. Writing is
write-then-rename, so a retried or killed task never leaves a partial or duplicated partition.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from configs.dataset import DatasetConfig


def partition_dir(root: Path, dataset: DatasetConfig, logical_date: date) -> Path:
    """``<root>/<dataset>/ds=<date>``: the one layout of every per-date folder (landing, validated, artifacts)."""
    return root / dataset.name / f"ds={logical_date.isoformat()}"


def partition_dates(root: Path, dataset: DatasetConfig) -> list[date]:
    """The logical dates that have a partition under ``root``, oldest first."""
    folder = root / dataset.name
    return sorted(date.fromisoformat(p.name.removeprefix("ds=")) for p in folder.glob("ds=*") if p.is_dir())


def partition_path(landing_root: Path, dataset: DatasetConfig, logical_date: date) -> Path:
    return partition_dir(landing_root, dataset, logical_date) / "data.parquet"


def end_of(logical_date: date) -> datetime:
    """The (exclusive) end of a logical date in UTC: data up to this instant belongs to it."""
    return datetime.combine(logical_date + timedelta(days=1), time(), tzinfo=UTC)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write parquet to a temporary sibling, then rename over the target (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_partition(landing_root: Path, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    path = partition_path(landing_root, dataset, logical_date)
    if not path.exists():
        raise FileNotFoundError(f"no landing partition for {dataset.name} on {logical_date}: run ingest first ({path})")
    return pd.read_parquet(path)
