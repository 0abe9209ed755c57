"""The online forecast ledger: every forecast the service answers goes to the forecast table.

Off the request path, and off the request process: a request only appends its forecasts, as small
tuples, to a bounded buffer; twice a second a thread hands what the buffer holds to a writer process
as one batch, and the writer inserts it (source ``online``). A forecast answered again (same entity,
features and version: the same answer) is one entry of the batch with its number of answers, and
one row of the table whose ``answers`` grow: what the table receives follows the entities and their
feature updates, not the request rate. The writer is a process of its own
because turning thousands of rows a second into SQL is Python work: in a thread it would hold the GIL
the requests need, and every request would wait for it. When the buffer is full new forecasts are
dropped and counted, never waited for; when the table refuses a batch (the database is down) the
writer retries with backoff, then drops and counts the batch, so a slow database never slows a
request. Stopping the service writes what is still buffered.
"""

from __future__ import annotations

import array
import collections
import logging
import multiprocessing
import queue
import threading
from collections.abc import Sequence
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from core.frequency import Frequency
from core.settings import Settings
from forecast_store.writer import Answered, Entry, write_until_stopped
from model_serving.metrics import LEDGER_DROPPED, LEDGER_RECORDED
from model_serving.schemas import Forecast

log = logging.getLogger(__name__)

BATCH_FORECASTS = 5_000  # forecasts per write, at most
FLUSH_SECONDS = 0.5  # how often the buffer is handed over to the writer
QUEUED_BATCHES = 4  # batches handed over and not yet written, at most


class ForecastLedger:
    """A bounded buffer of answered forecasts, handed in batches to the process that writes them."""

    def __init__(self, settings: Settings, dataset: str, frequency: Frequency, buffer: int | None = None):
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self.capacity = buffer or settings.forecast_ledger_buffer
        # Appends and pops of a deque are atomic: requests add to it without a lock of ours.
        self._buffer: collections.deque[Answered] = collections.deque()
        self._batches: Any = context.Queue(maxsize=QUEUED_BATCHES)
        self._written: Synchronized[int] = context.Value("q", 0)
        self._failed: Synchronized[int] = context.Value("q", 0)
        self._counted, self._counting = (0, 0), threading.Lock()
        self._stop = threading.Event()
        self._writer = context.Process(
            target=write_until_stopped,
            args=(settings, dataset, frequency, self._batches, self._written, self._failed),
            name="forecast-ledger",
            daemon=True,
        )
        self._handover = threading.Thread(target=self._hand_over_until_stopped, name="forecast-ledger", daemon=True)

    def start(self) -> ForecastLedger:
        self._writer.start()
        self._handover.start()
        return self

    def record(self, forecasts: Sequence[Forecast]) -> None:
        """Buffer answered forecasts; what does not fit is dropped and counted. Never blocks."""
        for f in forecasts:
            if len(self._buffer) >= self.capacity:
                LEDGER_DROPPED.labels(reason="buffer_full").inc()
                continue
            # An array of doubles, not a list: the entry then holds no object the garbage collector tracks,
            # so buffered forecasts do not pile up in its older generations and lengthen its pauses.
            values = array.array("d", [p.value for p in f.forecast])
            bands = array.array("d", [x for p in f.forecast for b in p.intervals for x in (b.lower, b.upper)])
            levels = tuple(f.interval_levels)
            self._buffer.append(
                (f.entity_id, f.model_name, f.model_version, f.feature_event_time, values, levels, bands)
            )

    def _hand_over_until_stopped(self) -> None:
        """Every FLUSH_SECONDS, what the buffer holds goes to the writer as one batch (one pickle, one
        pipe write); while the writer is behind (its queue of batches full), the buffer keeps it."""
        pending: dict[tuple[Any, ...], Entry] = {}
        taken = 0
        while True:
            stopping = self._stop.wait(FLUSH_SECONDS)
            while self._buffer and taken < BATCH_FORECASTS:
                answered = self._buffer.popleft()
                taken += 1
                key = (*answered[:4], answered[4].tobytes())  # same values: same version, same bands
                entry = pending.get(key)
                pending[key] = (*answered, 1 if entry is None else entry[7] + 1)
            if pending:
                try:
                    self._batches.put(list(pending.values()), timeout=FLUSH_SECONDS if not stopping else 30.0)
                    pending, taken = {}, 0
                except queue.Full:
                    pass  # kept in pending; the buffer fills meanwhile and drops what comes
            self._count()
            if stopping and not self._writer.is_alive():  # nobody left to write them
                LEDGER_DROPPED.labels(reason="write_failed").inc(taken + len(self._buffer))
                return
            if stopping and not self._buffer and not pending:
                return

    def _count(self) -> None:
        """Bring the service's counters up to what the writer reports (from the hand-over thread, and
        once more when closing)."""
        with self._counting:
            written, failed = self._written.value, self._failed.value
            LEDGER_RECORDED.inc(written - self._counted[0])
            LEDGER_DROPPED.labels(reason="write_failed").inc(failed - self._counted[1])
            self._counted = (written, failed)

    def close(self, timeout: float = 60.0) -> None:
        """Hand over what is buffered, let the writer write it, then stop it (``None`` ends its queue)."""
        self._stop.set()
        self._handover.join(timeout=timeout)
        if self._writer.is_alive():
            self._batches.put(None, timeout=timeout)
            self._writer.join(timeout=timeout)
        self._count()
