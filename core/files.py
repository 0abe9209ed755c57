"""Files that other processes read: written to a temporary sibling, then published in one rename.

Every output of the platform that another task, pod or service reads (partitions, feature tables,
training sets, parameters, reports, configs) goes through :func:`replacing`, so a retried or killed
writer never leaves a partial file behind, and readers see the old content or the new, never a mix.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import time as clock
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

TMP_SUFFIX = ".tmp"
STALE_TMP_SECONDS = 24 * 3600


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


def write_atomically_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` at ``path`` with :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


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
