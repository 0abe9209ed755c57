"""The online forecast ledger: every forecast the service answers goes to the forecast table.

Off the request path: a request only puts its forecasts in a bounded buffer (``put_nowait``), and a
writer thread drains it in batches into the table (source ``online``). When the buffer is full the
new forecasts are dropped and counted, never waited for; when the table refuses a batch (the
database is down) the writer retries with backoff, and past its retries drops and counts the batch,
so a slow database never slows a request. Stopping the service writes what is still buffered.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from datetime import UTC

from core.settings import Settings
from forecast_store import store
from forecast_store.schema import ONLINE
from model_serving.metrics import LEDGER_DROPPED, LEDGER_RECORDED
from model_serving.schemas import Forecast

log = logging.getLogger(__name__)

BATCH_FORECASTS = 500  # forecasts per write
WRITE_ATTEMPTS = 4
RETRY_INITIAL_SECONDS = 0.5


class ForecastLedger:
    """A bounded buffer of answered forecasts and the thread that writes them."""

    def __init__(self, settings: Settings, dataset: str, buffer: int | None = None):
        self.settings, self.dataset = settings, dataset
        self._buffer: queue.Queue[Forecast | None] = queue.Queue(maxsize=buffer or settings.forecast_ledger_buffer)
        self._writer = threading.Thread(target=self._write_until_stopped, name="forecast-ledger", daemon=True)
        self._ready = False

    def start(self) -> ForecastLedger:
        self._writer.start()
        return self

    def record(self, forecasts: Sequence[Forecast]) -> None:
        """Buffer answered forecasts; what does not fit is dropped and counted. Never blocks."""
        for forecast in forecasts:
            try:
                self._buffer.put_nowait(forecast)
            except queue.Full:
                LEDGER_DROPPED.labels(reason="buffer_full").inc()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is buffered, then stop the writer (the end of the buffer is marked by ``None``;
        it waits for room if the buffer is full)."""
        if self._writer.is_alive():
            self._buffer.put(None, timeout=timeout)
            self._writer.join(timeout=timeout)

    def _write_until_stopped(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Forecast] = []
            item = self._buffer.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= BATCH_FORECASTS:
                    break
                try:
                    item = self._buffer.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            if batch:
                self._write(batch)

    def _write(self, batch: list[Forecast]) -> None:
        rows = [
            store.ForecastRow(
                dataset=self.dataset,
                entity_id=forecast.entity_id,
                data_date=forecast.feature_event_time.astimezone(UTC).date(),
                issue_time=forecast.feature_event_time,
                step=step,
                target_time=point.timestamp,
                value=point.value,
                model_name=forecast.model_name,
                model_version=forecast.model_version,
                source=ONLINE,
            )
            for forecast in batch
            for step, point in enumerate(forecast.forecast, start=1)
        ]
        delay = RETRY_INITIAL_SECONDS
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                if not self._ready:
                    store.upgrade(self.settings)
                    self._ready = True
                store.append(self.settings, rows)
                LEDGER_RECORDED.inc(len(batch))
                return
            except Exception:
                log.warning("forecast ledger: write %d of %d failed", attempt, WRITE_ATTEMPTS, exc_info=True)
                if attempt < WRITE_ATTEMPTS:
                    time.sleep(delay)
                    delay *= 2
        LEDGER_DROPPED.labels(reason="write_failed").inc(len(batch))
