"""The service's spool of answered forecasts: append-only files on local disk, drained into the table.

The forecast table is a database that restarts, fails over and is sometimes out of reach for a
minute; the service keeps answering meanwhile, and what it answered must still reach the table,
exactly once. So each worker appends the forecasts of a request to a segment file of its own before
the answer leaves: one ``write()`` into the kernel's page cache, which a SIGKILLed worker does not
take along (only losing the machine does, as with any write not synced to the disk).

The writer process (:mod:`forecast_store.writer`) reads a segment from the position the table holds
for it and stores the rows and the new position in one transaction (``forecast_spool_marks``): a
writer killed between the two writes nothing twice. A segment is held (``flock``) by the worker
that appends to it; one that nobody holds (its worker moved to a new segment, stopped, or was
killed: the kernel drops a dead process's locks) is claimed by any writer of the same spool,
drained to its end and deleted.

A spool belongs to one forecast table and dataset (:func:`spool_directory`): a writer never takes
another table's forecasts. Its files are the service's own (mode 0700/0600), and their records
are pickles that only the service's workers write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings

SUFFIX = ".seg"
DEAD_LETTER = "dead-letter"
HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload
SEGMENT_BYTES = 64 * 1024 * 1024  # a worker starts a new segment past this size


def spool_directory(settings: Settings, dataset: str) -> Path:
    """The spool of the settings' forecast table and ``dataset``: under the setting's folder, one
    sub-folder per table and dataset, so services that share a home never mix their forecasts."""
    key = hashlib.sha256(f"{settings.forecast_store_url}\n{dataset}".encode()).hexdigest()[:16]
    root = settings.forecast_ledger_spool or settings.home / "ledger-spool"
    return root / f"{dataset}-{key}"


def encode(payload: Any) -> bytes:
    """One record: its length and checksum, then the pickled payload."""
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data), zlib.crc32(data)) + data


class SpoolAppender:
    """A worker's side of the spool: records appended to the segment it holds; past
    :data:`SEGMENT_BYTES` it moves to a new one and lets the old one go to whichever writer claims it."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.token = uuid.uuid4().hex[:12]  # this worker's segments: <token>-<sequence>.seg
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sequence = 0
        self._fd, self._size = self._open()

    def _open(self) -> tuple[int, int]:
        """A new segment, locked before it has its name: a writer that lists the folder never sees a
        segment that is not yet held, and so never claims and deletes it from under its worker."""
        self._sequence += 1
        name = f"{self.token}-{self._sequence:06d}{SUFFIX}"
        staging = self.directory / f".{name}.new"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(staging, self.directory / name)
        return fd, 0

    def append(self, payload: Any) -> int:
        """Write one record; returns its size. Raises OSError when the disk refuses it."""
        record = encode(payload)
        with self._lock:
            if self._size >= self.segment_bytes:
                os.close(self._fd)  # its lock goes with it: a writer claims, drains and deletes it
                self._fd, self._size = self._open()
            view = memoryview(record)
            while view:  # a regular file takes it in one write; a short one is finished, never left torn
                view = view[os.write(self._fd, view) :]
            self._size += len(record)
        return len(record)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass(frozen=True)
class Record:
    """A record read back: its payload (None when it could not be read) and where it ends."""

    payload: Any
    start: int
    end: int
    error: str | None = None


def read_records(path: Path, position: int, limit: int) -> tuple[list[Record], int]:
    """The complete records of a segment from ``position``, about ``limit`` bytes of them (a first
    record longer than that whole); returns them and the position after the last. A record cut
    short at the end is left for a later read (its worker may be writing it); one whose checksum or
    pickle fails comes back with its error."""
    with open(path, "rb") as handle:
        handle.seek(position)
        data = handle.read(limit)
        if len(data) >= HEADER.size:
            length, _ = HEADER.unpack_from(data, 0)
            if HEADER.size + length > len(data):
                data += handle.read(HEADER.size + length - len(data))
    records: list[Record] = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, checksum = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if end > len(data):
            break
        body = data[offset + HEADER.size : end]
        start = position + offset
        if zlib.crc32(body) != checksum:
            records.append(Record(None, start, position + end, "checksum mismatch"))
        else:
            try:
                records.append(Record(pickle.loads(body), start, position + end))  # the service's own files
            except Exception as exc:
                records.append(Record(None, start, position + end, f"unreadable record: {exc!r}"))
        offset = end
    return records, position + offset


def segments(directory: Path) -> list[Path]:
    """The folder's segments, oldest of each worker first."""
    return sorted(directory.glob(f"*{SUFFIX}"))


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[int | None]:
    """The segment's lock if nobody holds it (the descriptor; None when its worker still holds it,
    or the segment is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)
