"""The landing area: raw data as parquet, one partition per logical date.

A partition holds the source as it was known at the end of its logical date. Writing is
write-then-rename, so a retried or killed task never leaves a partial or duplicated partition.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import time as clock
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from configs.dataset import DatasetConfig

DATA_FILE = "data.parquet"
TMP_SUFFIX = ".tmp"
STALE_TMP_SECONDS = 24 * 3600


def partition_dir(root: Path, dataset: DatasetConfig, logical_date: date) -> Path:
    """``<root>/<dataset>/ds=<date>``: the one layout of every per-date folder (landing, validated, artifacts)."""
    return root / dataset.name / f"ds={logical_date.isoformat()}"


def partition_dates(root: Path, dataset: DatasetConfig) -> list[date]:
    """The logical dates that have a partition under ``root``, oldest first."""
    folder = root / dataset.name
    # A folder alone is no partition: a failed validation removes the file and a killed first write
    # leaves only its hidden temporary file behind.
    return sorted(
        date.fromisoformat(p.name.removeprefix("ds=")) for p in folder.glob("ds=*") if (p / DATA_FILE).is_file()
    )


def partition_path(landing_root: Path, dataset: DatasetConfig, logical_date: date) -> Path:
    return partition_dir(landing_root, dataset, logical_date) / DATA_FILE


def end_of(logical_date: date) -> datetime:
    """The (exclusive) end of a logical date in UTC: data up to this instant belongs to it."""
    return datetime.combine(logical_date + timedelta(days=1), time(), tzinfo=UTC)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; once written it replaces ``path`` in one rename.

    Readers see the old file or the new one, never a part of either: a writer killed halfway leaves
    the target as it was plus a hidden ``.tmp`` sibling that no reader's pattern matches and that the
    next successful write removes. The data reaches the disk before the rename, so a crash of the
    machine cannot publish a name whose content was still in memory.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}{TMP_SUFFIX}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    for stale in _stale_temporaries(path):
        stale.unlink(missing_ok=True)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as parquet at ``path`` with :func:`replacing`."""
    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_text_atomically(text: str, path: Path) -> None:
    """Write ``text`` at ``path`` with :func:`replacing` (reports, results, configs read by other processes)."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stale_temporaries(path: Path) -> list[Path]:
    """Temporary siblings of ``path`` whose writer is gone: a dead process of this host, or untouched
    for a day (a writer on another host, whose process cannot be asked). A live writer's file stays,
    so concurrent writers of one target do not break each other's rename."""
    host, now, stale = socket.gethostname(), clock.time(), []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{TMP_SUFFIX}"):
        writer = tmp.name[len(path.name) + 2 : -len(TMP_SUFFIX)].rsplit(".", 2)
        try:
            age = now - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        local_and_dead = len(writer) == 3 and writer[0] == host and writer[1].isdigit() and not _alive(int(writer[1]))
        if local_and_dead or age > STALE_TMP_SECONDS:
            stale.append(tmp)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def read_partition(landing_root: Path, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    path = partition_path(landing_root, dataset, logical_date)
    if not path.exists():
        raise FileNotFoundError(f"no landing partition for {dataset.name} on {logical_date}: run ingest first ({path})")
    return pd.read_parquet(path)
