"""What a simulated day left in the stores, read by the simulation itself.

The report's figures come from the stores (landed partitions, the forecast table, MLflow), not from
what the DAGs said they did. Under faults a server these reads need may be restarting: :func:`reading`
tries a read again until it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as clock
from typing import Any, TypeVar

import pandas as pd

from core.dataset import DatasetConfig
from core.settings import Settings

T = TypeVar("T")
# How long the simulation's own reads of the stores keep trying while a server restarts.
READ_RETRY_SECONDS = 60.0


def reading(read: Callable[[], T], seconds: float = READ_RETRY_SECONDS) -> T:
    """``read()``, tried again while a server it needs restarts (the simulation's own reads)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return read()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def champion(settings: Settings, model_name: str) -> str | None:
    """The registered model's champion version, if it has one."""
    from model_registry.registry import champion_version

    return champion_version(settings, model_name)


def rows_landed(settings: Settings, dataset: DatasetConfig, day: date) -> int:
    """Rows of ``day`` in the day's landed partition (0 when nothing landed)."""
    from core.objects import exists, read_parquet
    from core.partitions import landing_path

    path = landing_path(settings, dataset, day)
    if not exists(path, settings):
        return 0
    stamps = pd.to_datetime(read_parquet(path, settings)[dataset.timestamp_column], utc=True)
    start = pd.Timestamp(datetime.combine(day, clock(), tzinfo=UTC))
    return int(((stamps >= start) & (stamps < start + pd.Timedelta(days=1))).sum())


def forecasts_issued(settings: Settings, name: str, day: date) -> int:
    from forecast_store import store

    return len(store.issued(settings, name, data_date=day))


def scored_on(settings: Settings, name: str, day: date) -> int:
    from forecast_store import store

    return sum(1 for r in store.scored(settings, name) if r["actuals_date"] == day)


def realized(settings: Settings, name: str, day: date) -> dict[str, float | None]:
    """The champion's and seasonal naive's MAE on the batch forecasts scored for ``day``."""
    from forecast_store import store
    from forecast_store.schema import BATCH

    rows = [r for r in store.scored(settings, name, day, day) if r["source"] == BATCH]
    fair = [r for r in rows if r["naive_error"] is not None]
    if not fair:
        return {"champion_mae": None, "naive_mae": None}
    return {
        "champion_mae": sum(abs(r["error"]) for r in fair) / len(fair),
        "naive_mae": sum(abs(r["naive_error"]) for r in fair) / len(fair),
    }


def drift_check(settings: Settings, day: date) -> dict[str, Any]:
    """The day's drift check: its drift share and state (drifted, steady, ...), from its MLflow run."""
    from model_registry.tracking import client

    mlflow = client(settings)
    experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        return {}
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        f"tags.job = 'drift_monitor' and tags.check_date = '{day.isoformat()}'",
        max_results=1,
    )
    if not runs:
        return {}
    share = runs[0].data.metrics.get("drift_share")
    return {"share": None if share is None else float(share), "state": runs[0].data.tags.get("state")}


def post_promotion_maes(
    settings: Settings, name: str, promoted: str, replaced: str, since: date
) -> dict[str, tuple[float, float, int]]:
    """Per entity: (new champion's MAE, old champion's MAE, targets) on the targets both forecast
    from the same features since ``since``: the new one's batch forecasts, the old one's shadow
    forecasts."""
    from forecast_store import store
    from forecast_store.schema import BATCH, SHADOW

    frame = pd.DataFrame(store.scored(settings, name))
    if frame.empty:
        return {}
    frame = frame[frame["data_date"] >= since]
    keys = ["entity_id", "data_date", "step"]
    new = frame[(frame["source"] == BATCH) & (frame["model_version"] == promoted)].set_index(keys)["error"].abs()
    old = frame[(frame["source"] == SHADOW) & (frame["model_version"] == replaced)].set_index(keys)["error"].abs()
    both = pd.concat({"new": new, "old": old}, axis=1, join="inner")
    return {
        str(entity): (float(rows["new"].mean()), float(rows["old"].mean()), len(rows))
        for entity, rows in both.groupby(level="entity_id")
    }


def promoted_by_force(settings: Settings, model_name: str, version: str) -> bool:
    """Whether ``version`` became champion through a recorded override of the drift gate (its tags:
    what the gate wrote, not what the simulation meant to do)."""
    from feature_drift.outcomes import DriftOutcome
    from model_registry.tracking import client

    tags = client(settings).get_model_version(model_name, version).tags
    return tags.get("gate_drift") == DriftOutcome.FORCED.value


def features_of_day(settings: Settings, dataset: DatasetConfig, day: date) -> int:
    """Rows of the offline feature table whose event time is in ``day`` (what a refused day must not
    have built)."""
    from core.columns import EVENT_TIMESTAMP
    from core.objects import exists, read_parquet
    from feature_store.features import feature_table_location

    location = feature_table_location(settings, dataset)
    if not exists(location, settings):
        return 0
    stamps = pd.to_datetime(read_parquet(location, settings)[EVENT_TIMESTAMP], utc=True)
    start = pd.Timestamp(datetime.combine(day, clock(), tzinfo=UTC))
    return int(((stamps >= start) & (stamps < start + pd.Timedelta(days=1))).sum())
