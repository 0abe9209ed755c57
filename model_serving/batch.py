"""Batch forecasts: the champion forecasts every entity from the features known at the end of a day,
and the day's forecasts replace any earlier ones in the forecast table (a re-run of a day, or a day
whose source was corrected, leaves exactly its new rows).

The versions that do not serve forecast the same rows in the champion's shadow (source ``shadow``):
the previous champion, and a challenger newer than the champion. Scored like the champion's, their
forecasts tell on the same targets whether a promotion paid off, and how a challenger that was not
promoted would have done.
"""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd

from core.columns import EVENT_TIMESTAMP, lag_name
from core.dataset import DatasetConfig
from core.history import with_history
from core.settings import Settings
from core.windows import end_of
from forecast_store import store
from forecast_store.outcomes import IssuedForecasts
from forecast_store.schema import BATCH, SHADOW

log = logging.getLogger(__name__)


def newest_features(settings: Settings, dataset: DatasetConfig, data_date: date) -> pd.DataFrame:
    """Each entity's newest feature row before the end of ``data_date`` (from the feature table,
    which holds every day: the online store holds only the newest), with its history where the
    features hold the target's current value (lag 0)."""
    from feature_store.features import read_feature_table

    features = read_feature_table(settings, dataset)
    known = features[features[EVENT_TIMESTAMP] < pd.Timestamp(end_of(data_date))]
    if known.empty:
        raise LookupError(f"{dataset.name}: no features before the end of {data_date} to forecast from")
    newest = known.sort_values(EVENT_TIMESTAMP).groupby(dataset.entity_column, sort=True).tail(1)
    if lag_name(dataset.target, 0) not in known.columns:  # no values to build histories from
        return newest
    # Each row's history from the table's own values (a per-series version forecasts from it).
    return with_history(newest, known, dataset)


def shadow_versions(settings: Settings, model_name: str, champion: str) -> list[str]:
    """The previous champion, and the challenger when it is newer than the champion."""
    from model_registry.registry import alias_version
    from model_registry.tracking import CHALLENGER, PREVIOUS

    previous = alias_version(settings, model_name, PREVIOUS)
    challenger = alias_version(settings, model_name, CHALLENGER)
    shadows = [previous] if previous not in (None, champion) else []
    if challenger is not None and int(challenger) > int(champion) and challenger not in shadows:
        shadows.append(challenger)
    return [str(v) for v in shadows]


def issue_day(
    settings: Settings, dataset: DatasetConfig, data_date: date, dag_run_id: str | None = None
) -> IssuedForecasts:
    """Forecast every entity with the champion, and with the shadow versions, from the day's newest
    features, and store them as the day's forecasts (replacing the day's earlier ones in one
    transaction)."""
    from model_registry.registry import champion_version

    name = settings.model_name(dataset.name)
    version = champion_version(settings, name)
    if version is None:
        raise LookupError(f"{name} has no champion to forecast with")
    rows = newest_features(settings, dataset, data_date)
    issued = _forecast(settings, dataset, name, version, rows, data_date, BATCH, dag_run_id)
    shadows: list[str] = []
    for shadow in shadow_versions(settings, name, version):
        try:
            issued += _forecast(settings, dataset, name, shadow, rows, data_date, SHADOW, dag_run_id)
            shadows.append(shadow)
        except Exception:  # a shadow that cannot forecast never keeps the champion's forecasts from the table
            log.exception("%s v%s cannot forecast in the shadow of v%s for %s", name, shadow, version, data_date)
    store.upgrade(settings)
    written = store.replace_day(settings, dataset.name, data_date, issued)
    entities = sorted(str(e) for e in rows[dataset.entity_column])
    log.info(
        "issued %d forecasts of %s v%s (shadows: %s) for %s (%d entities)",
        written, name, version, ", ".join(f"v{s}" for s in shadows) or "none", data_date, len(entities),
    )  # fmt: skip
    return IssuedForecasts(
        dataset=dataset.name,
        data_date=data_date,
        model_name=name,
        model_version=version,
        entities=entities,
        rows=written,
        shadow_versions=shadows,
    )


def _forecast(
    settings: Settings,
    dataset: DatasetConfig,
    name: str,
    version: str,
    rows: pd.DataFrame,
    data_date: date,
    source: str,
    dag_run_id: str | None,
) -> list[store.ForecastRow]:
    """One version's forecasts of every entity in ``rows``, as the table's rows."""
    from model_bundle.outputs import bands_of, point_forecast, pyfunc_inputs
    from model_registry.provenance import trusted_model

    with trusted_model(settings, name, version) as model:
        output = model.predict(pyfunc_inputs(model.metadata.get_input_schema(), rows, dataset.entity_column))
    predicted, bands = point_forecast(output), bands_of(output)
    issued: list[store.ForecastRow] = []
    for n, ((_, row), values) in enumerate(zip(rows.iterrows(), predicted, strict=True)):
        issue_time = pd.Timestamp(row[EVENT_TIMESTAMP]).to_pydatetime()
        targets = dataset.frequency.ahead(issue_time, len(values))
        issued += [
            store.ForecastRow(
                dataset=dataset.name,
                entity_id=str(row[dataset.entity_column]),
                data_date=data_date,
                issue_time=issue_time,
                step=step,
                target_time=targets[step - 1],
                value=float(value),
                model_name=name,
                model_version=version,
                source=source,
                dag_run_id=dag_run_id,
                intervals=tuple(
                    (level, float(lower[n, step - 1]), float(upper[n, step - 1])) for level, (lower, upper) in bands
                ),
            )
            for step, value in enumerate(values, start=1)
        ]
    return issued
