"""Batch forecasts: the champion forecasts every entity from the features known at the end of a day,
and the day's forecasts replace any earlier ones in the forecast table (a re-run of a day, or a day
whose source was corrected, leaves exactly its new rows)."""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.settings import Settings
from core.windows import end_of
from forecast_store import store
from forecast_store.outcomes import IssuedForecasts

log = logging.getLogger(__name__)


def newest_features(settings: Settings, dataset: DatasetConfig, data_date: date) -> pd.DataFrame:
    """Each entity's newest feature row before the end of ``data_date`` (from Feast's offline source,
    which holds every day: the online store holds only the newest)."""
    from feature_store.features import offline_source_path

    features = pd.read_parquet(offline_source_path(settings, dataset))
    known = features[features[EVENT_TIMESTAMP] < pd.Timestamp(end_of(data_date))]
    if known.empty:
        raise LookupError(f"{dataset.name}: no features before the end of {data_date} to forecast from")
    return known.sort_values(EVENT_TIMESTAMP).groupby(dataset.entity_column, sort=True).tail(1)


def issue_day(
    settings: Settings, dataset: DatasetConfig, data_date: date, dag_run_id: str | None = None
) -> IssuedForecasts:
    """Forecast every entity with the champion from the day's newest features and store them as the
    day's batch forecasts (replacing the day's earlier ones in one transaction)."""
    from model_registry.provenance import trusted_model
    from model_registry.registry import champion_version

    name = settings.model_name(dataset.name)
    version = champion_version(settings, name)
    if version is None:
        raise LookupError(f"{name} has no champion to forecast with")
    rows = newest_features(settings, dataset, data_date)
    with trusted_model(settings, name, version) as model:
        columns = model.metadata.get_input_schema().input_names()
        predicted = np.asarray(model.predict(rows[columns].astype("float64")), dtype=np.float64)
    issued: list[store.ForecastRow] = []
    for (_, row), values in zip(rows.iterrows(), predicted, strict=True):
        issue_time = pd.Timestamp(row[EVENT_TIMESTAMP]).to_pydatetime()
        issued += [
            store.ForecastRow(
                dataset=dataset.name,
                entity_id=str(row[dataset.entity_column]),
                data_date=data_date,
                issue_time=issue_time,
                step=step,
                target_time=issue_time + step * dataset.frequency,
                value=float(value),
                model_name=name,
                model_version=version,
                dag_run_id=dag_run_id,
            )
            for step, value in enumerate(values, start=1)
        ]
    store.upgrade(settings)
    written = store.replace_day(settings, dataset.name, data_date, issued)
    entities = sorted(str(e) for e in rows[dataset.entity_column])
    log.info("issued %d forecasts of %s v%s for %s (%d entities)", written, name, version, data_date, len(entities))
    return IssuedForecasts(
        dataset=dataset.name,
        data_date=data_date,
        model_name=name,
        model_version=version,
        entities=entities,
        rows=written,
    )
