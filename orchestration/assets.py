"""The Airflow Assets of the daily loop: what the daily data DAG makes, and which day it made.

``ingest_<name>`` emits an event on :func:`validated` once a day passed the data check and on
:func:`online_features` once that day's features are in the online store; the DAGs that judge new
data are scheduled on those Assets, not on a clock that guesses when data is there. Each event
carries its data date in ``extra``: asset-triggered runs have no logical date, and one consumer run
may fold several events (days) together, so the days come from the events, in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from airflow.sdk import Asset

DATA_DATE = "data_date"  # the key of an asset event's extra that names its day


def validated(dataset_name: str) -> Asset:
    """The dataset's validated partitions (an event per day that passed the data check)."""
    return Asset(name=f"{dataset_name}_validated", uri=f"x-mlops://{dataset_name}/validated", group="data")


def online_features(dataset_name: str) -> Asset:
    """The dataset's features in the online store (an event per day loaded)."""
    return Asset(name=f"{dataset_name}_online_features", uri=f"x-mlops://{dataset_name}/online-features", group="data")


def forecasts(dataset_name: str) -> Asset:
    """The dataset's stored batch forecasts (an event per day forecast)."""
    return Asset(name=f"{dataset_name}_forecasts", uri=f"x-mlops://{dataset_name}/forecasts", group="forecasts")


def record_day(context: Any, asset: Asset, day: date) -> None:
    """Name ``day`` in the event the running task emits on ``asset`` (one of its outlets)."""
    context["outlet_events"][asset].extra = {DATA_DATE: day.isoformat()}


def days_of(events: Iterable[Any]) -> list[date]:
    """The data dates that asset events name, oldest first, each once (a re-run emits its day again)."""
    return sorted({date.fromisoformat(str(e.extra[DATA_DATE])) for e in events if DATA_DATE in (e.extra or {})})


def triggering_days(context: Any, asset: Asset) -> list[date]:
    """The days whose events on ``asset`` started this run; empty for a run started by hand or by time."""
    events = context.get("triggering_asset_events") or {}
    try:
        return days_of(events[asset])
    except KeyError:
        return []
