"""The online forecast ledger: every forecast the service answers goes to the forecast table, once.

A request appends its forecasts, as one small record, to its worker's spool segment on local disk
before the answer leaves (:mod:`forecast_store.spool`: one ``write()``, no lock of the table, no
wait on the database); a writer process of the worker's drains the spool into the table
(:mod:`forecast_store.writer`). A forecast answered again (same entity, features and version: the
same answer) is one row of the table whose ``answers`` grow: what the table receives follows the
entities and their feature updates, not the request rate. The writer is a process of its own
because turning thousands of rows a second into SQL is Python work: in a thread it would hold the
GIL the requests need.

Nothing answered is lost to a database outage (the records wait on disk and the writer retries
until the table is back), to a killed worker (its segment is on disk; any writer of the spool claims
it), or to a dead writer (a watcher thread starts another and counts it). Only a spool grown past
``forecast_ledger_spool_mb`` or a disk that refuses the write drops forecasts, counted by reason.
"""

from __future__ import annotations

import array
import logging
import multiprocessing
import threading
import time
from collections.abc import Sequence
from typing import Any

from core.frequency import Frequency
from core.settings import Settings
from forecast_store.spool import SpoolAppender, spool_directory
from forecast_store.writer import Answered, Counters, write_until_stopped
from model_serving.metrics import (
    LEDGER_BACKLOG,
    LEDGER_DEAD_LETTERED,
    LEDGER_DROPPED,
    LEDGER_RECORDED,
    LEDGER_UNWRITTEN_SECONDS,
    LEDGER_WRITER_RESTARTS,
)
from model_serving.schemas import Answer

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.5  # how often the writer's figures reach the metrics, and a dead writer is noticed


class ForecastLedger:
    """A worker's spool of answered forecasts and the process that writes them into the table."""

    def __init__(self, settings: Settings, dataset: str, frequency: Frequency):
        self._context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self.settings, self.dataset, self.frequency = settings, dataset, frequency
        self.directory = spool_directory(settings, dataset)
        self.max_bytes = settings.forecast_ledger_spool_mb * 1024 * 1024
        self.counters = Counters(  # no locks: see Counters
            written=self._context.Value("q", 0, lock=False),
            dead_lettered=self._context.Value("q", 0, lock=False),
            backlog_bytes=self._context.Value("q", 0, lock=False),
            progressed_at=self._context.Value("d", time.time(), lock=False),
        )
        self._counted = (0, 0)
        self._counting = threading.Lock()
        self._stop = self._context.Value("b", 0, lock=False)  # set by the worker, read by its writer
        self._closing = threading.Event()
        self._appender: SpoolAppender | None = None
        self._writer: Any = None
        self._watcher = threading.Thread(target=self._watch_until_closed, name="forecast-ledger", daemon=True)

    def start(self) -> ForecastLedger:
        self._appender = SpoolAppender(self.directory)
        self._writer = self._start_writer()
        self._watcher.start()
        return self

    def _start_writer(self) -> Any:
        assert self._appender is not None
        writer = self._context.Process(
            target=write_until_stopped,
            args=(
                self.settings,
                self.dataset,
                self.frequency,
                self.directory,
                self._appender.token,
                self._stop,
                self.counters,
            ),
            name="forecast-ledger",
            daemon=True,
        )
        writer.start()
        return writer

    @property
    def writer_pid(self) -> int | None:
        return self._writer.pid if self._writer is not None else None

    def record(self, forecasts: Sequence[Answer]) -> None:
        """Spool answered forecasts before their answer leaves; never waits on the database. Past the
        spool's size limit, or when the disk refuses the write, they are dropped and counted."""
        if not forecasts or self._appender is None:
            return
        if self.counters.backlog_bytes.value >= self.max_bytes:
            LEDGER_DROPPED.labels(reason="spool_full").inc(len(forecasts))
            return
        # Arrays of doubles, not lists: small to pickle, and cheap to compare when the writer combines
        # forecasts answered again. The bands run step by step, each step's levels narrowest first.
        entries: list[Answered] = [
            (
                f.entity_id,
                f.model_name,
                f.model_version,
                f.feature_event_time,
                array.array("d", f.values),
                tuple(f.interval_levels),
                array.array(
                    "d", [x for h in range(len(f.values)) for lower, upper in f.bands for x in (lower[h], upper[h])]
                ),
            )
            for f in forecasts
        ]
        try:
            self._appender.append(entries)
        except OSError:
            log.exception("forecast ledger: the spool refused %d forecasts", len(entries))
            LEDGER_DROPPED.labels(reason="spool_failed").inc(len(entries))

    def _watch_until_closed(self) -> None:
        """Bring the metrics up to the writer's figures; start a new writer when the one running died
        (its segments are on disk: the new one goes on from the table's marks)."""
        while not self._closing.wait(WATCH_SECONDS):
            self._count()
            if not self._writer.is_alive():
                log.error("forecast ledger: the writer exited (code %s); starting another", self._writer.exitcode)
                LEDGER_WRITER_RESTARTS.inc()
                self._writer = self._start_writer()

    def _count(self) -> None:
        with self._counting:
            written, dead = self.counters.written.value, self.counters.dead_lettered.value
            LEDGER_RECORDED.inc(written - self._counted[0])
            LEDGER_DEAD_LETTERED.inc(dead - self._counted[1])
            self._counted = (written, dead)
            backlog = self.counters.backlog_bytes.value
            LEDGER_BACKLOG.set(backlog)
            LEDGER_UNWRITTEN_SECONDS.set(time.time() - self.counters.progressed_at.value if backlog else 0.0)

    def close(self, timeout: float = 60.0) -> None:
        """Close the spool, let the writer write what it holds, then stop it. A writer that cannot
        finish in ``timeout`` (the database is out of reach) is stopped: the spool keeps the rest for
        the next writer of the same table."""
        self._closing.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=timeout)
        if self._appender is not None:
            self._appender.close()  # its lock goes: the writer may now drain and delete the last segment
        self._stop.value = 1
        if self._writer is not None:
            self._writer.join(timeout=timeout)
            if self._writer.is_alive():
                log.warning("forecast ledger: the writer did not finish in %.0f s; the spool %s keeps the rest",
                            timeout, self.directory)  # fmt: skip
                self._writer.kill()  # it ignores SIGTERM (see write_until_stopped)
                self._writer.join(timeout=10)
        self._count()
