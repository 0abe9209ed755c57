"""The process that writes the service's answered forecasts into the forecast table.

:mod:`model_serving.ledger` starts it and hands it batches; it lives here, with the table, so that
the process imports the table's code alone (nothing of the service: no metrics of its own that a
multi-worker service would sum with its workers').
"""

from __future__ import annotations

import array
import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from core.frequency import Frequency
from core.settings import Settings

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 4
RETRY_INITIAL_SECONDS = 0.5
# The writer yields the CPU to the service's requests: it only has to keep up on average, they wait
# for every millisecond it holds a core. Not the lowest priority: on a saturated machine that starves
# it (a closing service then waits on it for a minute).
WRITER_NICENESS = 10

# One answered forecast: entity, model name, model version, the features' event time, the values of
# steps 1..H (target times are the event time plus whole steps), the levels of its bands (narrowest
# first; empty: none) and the bands, step after step, level after level: lower, upper.
Answered = tuple[str, str, str, datetime, array.array, tuple[float, ...], array.array]
# What crosses to the writer per forecast: the same, and how many times it was answered.
Entry = tuple[str, str, str, datetime, Sequence[float], tuple[float, ...], Sequence[float], int]


def write_until_stopped(
    settings: Settings,
    dataset: str,
    frequency: Frequency,
    batches: Any,
    written: Synchronized[int],
    failed: Synchronized[int],
) -> None:
    """The writer process: each batch handed over goes into the table, until ``None`` comes; what it
    wrote and what it gave up on go to ``written`` and ``failed`` (forecasts)."""
    from forecast_store import store

    os.nice(WRITER_NICENESS)
    ready = False
    while (batch := batches.get()) is not None:
        rows = as_rows(dataset, frequency, batch)
        delay = RETRY_INITIAL_SECONDS
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                if not ready:
                    store.upgrade(settings)
                    ready = True
                store.append(settings, rows)
                with written.get_lock():
                    written.value += sum(entry[7] for entry in batch)
                break
            except Exception:
                log.warning("forecast ledger: write %d of %d failed", attempt, WRITE_ATTEMPTS, exc_info=True)
                if attempt == WRITE_ATTEMPTS:
                    with failed.get_lock():
                        failed.value += sum(entry[7] for entry in batch)
                else:
                    time.sleep(delay)
                    delay *= 2


def as_rows(dataset: str, frequency: Frequency, batch: list[Entry]) -> list[Any]:
    """The table's rows of queued forecasts: one per step, each with the forecast's answers."""
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
