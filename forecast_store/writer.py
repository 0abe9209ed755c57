"""The process that writes the service's answered forecasts from its spool into the forecast table.

:mod:`model_serving.ledger` starts it, one per worker; it lives here, with the table, so that the
process imports the table's code alone (nothing of the service: no metrics of its own that a
multi-worker service would sum with its workers'). It drains its worker's segments of the spool
(:mod:`forecast_store.spool`) and any segment nobody holds, in transactions that carry the position
they reach, so what it writes is written once whatever kills it.

What the table cannot take is never dropped: while the database is unreachable the writer retries
with backoff, as long as it takes, and the forecasts wait on disk. A record that can never be
stored (unreadable, or rows the table refuses) goes to the spool's dead-letter folder with the
reason, and the writer goes on with the next.
"""

from __future__ import annotations

import array
import base64
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.files import write_text_atomically
from core.frequency import Frequency
from core.settings import Settings
from forecast_store.spool import DEAD_LETTER, Record, claimed, read_records, segments

log = logging.getLogger(__name__)

WRITE_BYTES = 4 * 1024 * 1024  # spool bytes per transaction, at most
IDLE_SECONDS = 0.25  # the pause when the spool holds nothing new
RETRY_INITIAL_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
# The writer yields the CPU to the service's requests: it only has to keep up on average, they wait
# for every millisecond it holds a core. Not the lowest priority: on a saturated machine that starves
# it (a closing service then waits on it for a minute).
WRITER_NICENESS = 10

# One answered forecast: entity, model name, model version, the features' event time, the values of
# steps 1..H (target times are the event time plus whole steps), the levels of its bands (narrowest
# first; empty: none) and the bands, step after step, level after level: lower, upper. A spool record
# is the list of a request's answered forecasts.
Answered = tuple[str, str, str, datetime, array.array, tuple[float, ...], array.array]
# What is written per forecast: the same, and how many times it was answered.
Entry = tuple[str, str, str, datetime, Sequence[float], tuple[float, ...], Sequence[float], int]


@dataclass
class Counters:
    """What the writer tells its worker, in shared memory: forecasts written and dead-lettered, the
    spool bytes not yet in the table, and when it last caught up or wrote (epoch seconds).

    Shared values without a lock: one writer at a time sets them and the worker only reads them, and a
    writer SIGKILLed while holding a lock would leave it held for good (the worker's next read would
    wait forever)."""

    written: Any
    dead_lettered: Any
    backlog_bytes: Any
    progressed_at: Any


class TransientError(Exception):
    """The table could not be reached or written for now: the same write is tried again."""


def write_until_stopped(
    settings: Settings, dataset: str, frequency: Frequency, directory: Path, token: str, stop: Any, counters: Counters
) -> None:
    """The writer process: drain the spool until ``stop`` (a shared flag, without a lock, like
    :class:`Counters`) is set and its worker's segments are gone
    (the worker closed the last one before setting it), or until its worker is gone and nothing of
    it is left to write.

    It ignores SIGTERM and SIGINT: a supervisor that stops the service signals its whole process
    group, and the writer must outlive that signal long enough to write what its worker answered
    (the worker stops it once it has closed its spool)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(WRITER_NICENESS)
    parent = os.getppid()
    writer = SpoolWriter(settings, dataset, frequency, directory, token, counters)
    delay = RETRY_INITIAL_SECONDS
    while True:
        # A worker killed outright never sets ``stop``: its lock is gone, the writer claims its segments.
        stopping = bool(stop.value) or os.getppid() != parent
        try:
            progressed = writer.drain()
            delay = RETRY_INITIAL_SECONDS
        except TransientError as exc:
            log.warning("forecast ledger: the table is out of reach (%s); retrying in %.1f s", exc, delay)
            if (stop.value or os.getppid() != parent) and not writer.own_segments():
                return
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            continue
        if stopping and not writer.own_segments():
            return
        if not progressed:
            time.sleep(IDLE_SECONDS)


class SpoolWriter:
    """Drains segments into the table: its worker's (named after ``token``), and any nobody holds."""

    def __init__(
        self, settings: Settings, dataset: str, frequency: Frequency, directory: Path, token: str, counters: Counters
    ):
        self.settings, self.dataset, self.frequency = settings, dataset, frequency
        self.directory, self.token, self.counters = directory, token, counters
        self._positions: dict[str, int] = {}
        self._ready = False

    def own_segments(self) -> list[Path]:
        return [p for p in segments(self.directory) if p.name.startswith(f"{self.token}-")]

    def drain(self) -> bool:
        """One pass over the spool; whether anything was written. Raises :class:`TransientError` when
        the table is out of reach (what was written before stays written). A pass with nothing to
        write asks nothing of the database: a service whose table is down stops at once."""
        self.counters.backlog_bytes.value = self.unwritten_bytes()  # seen at once, the table reached or not
        progressed = False
        for path in segments(self.directory):
            with claimed(path) as fd:
                held = fd is None
                if held and not path.name.startswith(f"{self.token}-"):
                    continue  # another live worker's: its own writer drains it
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                if size == 0:  # never written to: nothing of it can be in the table
                    if not held:
                        path.unlink()
                    continue
                position = self._position(path.name)
                if position < size:
                    position = self._drain_segment(path, position, size)
                    progressed = True
                if not held:
                    self._close_segment(path, position, size)
        backlog = self.counters.backlog_bytes.value = self.unwritten_bytes()
        if progressed or backlog == 0:
            self.counters.progressed_at.value = time.time()
        return progressed

    def unwritten_bytes(self) -> int:
        """Bytes of this worker's segments past the positions written (a segment whose position is
        not known yet counts whole)."""
        total = 0
        for path in self.own_segments():
            with contextlib.suppress(FileNotFoundError):
                total += max(path.stat().st_size - self._positions.get(path.name, 0), 0)
        return total

    def _position(self, segment: str) -> int:
        from forecast_store import store

        if not self._ready:
            _guarded(store.upgrade, self.settings)
            self._ready = True
        if segment not in self._positions:
            self._positions[segment] = _guarded(store.spool_mark, self.settings, segment)
        return self._positions[segment]

    def _drain_segment(self, path: Path, position: int, size: int) -> int:
        """Write the segment's complete records from ``position`` up to ``size``; the new position."""
        while position < size:
            records, end = read_records(path, position, WRITE_BYTES)
            if not records:
                break  # a record still being written
            self._write(path.name, records, end)
            position = self._positions[path.name] = end
        return position

    def _close_segment(self, path: Path, position: int, size: int) -> None:
        """A segment nobody appends to any more, written up to ``position``: what remains past it is a
        record cut short (the disk filled up, the machine stopped): dead-lettered. Then it goes."""
        from forecast_store import store

        if position < size:
            with open(path, "rb") as handle:
                handle.seek(position)
                tail = handle.read()
            self._dead_letter(
                path.name, [Record(tail, position, size, "a record cut short at the end of a closed segment")]
            )
            _guarded(store.append, self.settings, [], mark=(path.name, size))
        path.unlink()
        _guarded(store.forget_spool_mark, self.settings, path.name)
        self._positions.pop(path.name, None)

    def _write(self, segment: str, records: list[Record], end: int) -> None:
        """Records into the table with the mark of ``end``, in one transaction; those that cannot be
        stored are dead-lettered first (so a crash before the mark leaves them to be dead-lettered
        again, never lost)."""
        from forecast_store import store

        good = [r for r in records if r.error is None]
        bad = [r for r in records if r.error is not None]
        rows: list[Any] = []
        try:
            rows = as_rows(self.dataset, self.frequency, combined(good))
        except Exception:
            # One record spoils the conversion: convert them one by one and set aside those that fail.
            kept: list[Record] = []
            for record in good:
                try:
                    rows += as_rows(self.dataset, self.frequency, combined([record]))
                    kept.append(record)
                except Exception as exc:
                    bad.append(Record(record.payload, record.start, record.end, f"not convertible: {exc!r}"))
            good = kept
        if bad:
            self._dead_letter(segment, bad)
        try:
            _guarded(store.append, self.settings, rows, mark=(segment, end))
        except TransientError:
            raise
        except Exception as exc:
            if len(good) <= 1:
                self._dead_letter(segment, [Record(r.payload, r.start, r.end, f"refused: {exc!r}") for r in good])
                _guarded(store.append, self.settings, [], mark=(segment, end))
                good = []
            else:  # which of them the table refuses: one transaction each
                for index, record in enumerate(good):
                    self._write(segment, [record], end if index == len(good) - 1 else good[index + 1].start)
                return
        self.counters.written.value += sum(len(r.payload) for r in good)

    def _dead_letter(self, segment: str, records: list[Record]) -> None:
        """Each record, with its reason, as a JSON file of the spool's dead-letter folder (named after
        where it was: writing it again replaces it)."""
        folder = self.directory / DEAD_LETTER
        folder.mkdir(exist_ok=True, mode=0o700)
        for record in records:
            body: dict[str, Any] = {
                "reason": record.error,
                "segment": segment,
                "start": record.start,
                "end": record.end,
            }
            if isinstance(record.payload, list):
                body["forecasts"] = [_readable(entry) for entry in record.payload]
            else:
                raw = record.payload if isinstance(record.payload, bytes) else b""
                body["bytes_base64"] = base64.b64encode(raw).decode()
            write_text_atomically(json.dumps(body, indent=1, default=str), folder / f"{segment}-{record.start}.json")
            log.error("forecast ledger: a spool record went to the dead-letter folder: %s", record.error)
            self.counters.dead_lettered.value += len(record.payload) if isinstance(record.payload, list) else 1


def _readable(entry: Any) -> Any:
    """A spooled forecast as JSON can hold it (whatever its shape, as far as it goes)."""
    try:
        entity, name, version, event_time, values, levels, bands = entry
        return {
            "entity_id": entity,
            "model_name": name,
            "model_version": version,
            "feature_event_time": str(event_time),
            "values": list(values),
            "interval_levels": list(levels),
            "bands": list(bands),
        }
    except Exception:
        return repr(entry)


def _guarded(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call`` with the database's passing failures turned into :class:`TransientError`. Rows the table
    refuses (a constraint, a value it cannot hold) are not passing: they raise as they are."""
    from sqlalchemy import exc as sa_exc

    try:
        return call(*args, **kwargs)
    except (sa_exc.IntegrityError, sa_exc.DataError):
        raise
    except (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError, OSError) as exc:
        raise TransientError(str(exc).splitlines()[0][:300]) from exc


def combined(records: list[Record]) -> list[Entry]:
    """The forecasts of spool records, each distinct one once with its number of answers (the same
    entity, features and version answered again is the same forecast)."""
    pending: dict[tuple[Any, ...], Entry] = {}
    for record in records:
        for answered in record.payload:
            key = (*answered[:4], answered[4].tobytes())  # same values: same version, same bands
            entry = pending.get(key)
            pending[key] = (*answered, 1 if entry is None else entry[7] + 1)
    return list(pending.values())


def as_rows(dataset: str, frequency: Frequency, batch: list[Entry]) -> list[Any]:
    """The table's rows of spooled forecasts: one per step, each with the forecast's answers."""
    from forecast_store import store
    from forecast_store.schema import ONLINE

    return [
        store.ForecastRow(
            dataset=dataset,
            entity_id=entity,
            data_date=event_time.astimezone(UTC).date(),
            issue_time=event_time,
            step=h,
            target_time=target,
            value=value,
            model_name=name,
            model_version=version,
            source=ONLINE,
            answers=answers,
            intervals=_step_bands(levels, bands, h - 1),
        )
        for entity, name, version, event_time, values, levels, bands, answers in batch
        for h, (value, target) in enumerate(zip(values, frequency.ahead(event_time, len(values)), strict=True), start=1)
    ]


def _step_bands(
    levels: tuple[float, ...], bands: Sequence[float], index: int
) -> tuple[tuple[float, float, float], ...]:
    """(level, lower, upper) of the step at ``index`` (0: the first) from a forecast's flat bands."""
    first = index * len(levels) * 2
    return tuple((level, bands[first + 2 * j], bands[first + 2 * j + 1]) for j, level in enumerate(levels))
