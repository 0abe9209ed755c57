"""Batch forecasts: the champion forecasts every entity from the features known at the end of a day,
and the day's forecasts replace any earlier ones in the forecast table (a re-run of a day, or a day
whose source was corrected, leaves exactly its new rows).

The versions that do not serve forecast the same rows in the champion's shadow (source ``shadow``):
the previous champion, and a challenger newer than the champion. Scored like the champion's, their
forecasts tell on the same targets whether a promotion paid off, and how a challenger that was not
promoted would have done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd

from core.columns import EVENT_TIMESTAMP, lag_name
from core.dataset import DatasetConfig
from core.history import with_history
from core.objects import ParquetRows
from core.partitions import SERIES_PER_PART
from core.settings import Settings
from core.windows import end_of
from forecast_store import store
from forecast_store.outcomes import IssuedForecasts
from forecast_store.schema import BATCH, SHADOW

log = logging.getLogger(__name__)


def newest_feature_parts(
    settings: Settings, dataset: DatasetConfig, data_date: date, per_part: int = SERIES_PER_PART
) -> Iterator[pd.DataFrame]:
    """Each entity's newest feature row before the end of ``data_date``, ``per_part`` entities at a
    time (from the feature table, which holds every day: the online store holds only the newest;
    each part read from the row groups that hold its entities), with its history where the features
    hold the target's current value (lag 0). An entity with no row before then is left out; none at
    all is a :class:`LookupError`."""
    from feature_store.features import feature_table_location

    table = ParquetRows(feature_table_location(settings, dataset), settings)
    end = pd.Timestamp(end_of(data_date))
    found = False
    for features in table.parts(dataset.entity_column, per_part):
        known = features[features[EVENT_TIMESTAMP] < end]
        if known.empty:
            continue
        found = True
        newest = known.sort_values(EVENT_TIMESTAMP).groupby(dataset.entity_column, sort=True).tail(1)
        if lag_name(dataset.target, 0) not in known.columns:  # no values to build histories from
            yield newest
        else:  # each row's history from the table's own values (a per-series version forecasts from it)
            yield with_history(newest, known, dataset)
    if not found:
        raise LookupError(f"{dataset.name}: no features before the end of {data_date} to forecast from")


def newest_features(settings: Settings, dataset: DatasetConfig, data_date: date) -> pd.DataFrame:
    """Every entity's newest feature row (:func:`newest_feature_parts`) in one frame."""
    return pd.concat(newest_feature_parts(settings, dataset, data_date), ignore_index=True)


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
    settings: Settings,
    dataset: DatasetConfig,
    data_date: date,
    dag_run_id: str | None = None,
    per_part: int = SERIES_PER_PART,
) -> IssuedForecasts:
    """Forecast every entity with the champion, and with the shadow versions, from the day's newest
    features, and store them as the day's forecasts (replacing the day's earlier ones in one
    transaction).

    The entities go ``per_part`` at a time (:func:`newest_feature_parts`), each part forecast by
    every version and its rows sent to the table before the next part is read: memory holds a part,
    whatever the number of entities. The day's transaction lasts the whole forecast: on SQLite it
    holds the database's write lock meanwhile, and the service's answers wait in its spool until
    their writer gets the table again (:mod:`forecast_store.writer`); nothing is lost. A shadow
    version that cannot be loaded, or fails on a part, forecasts nothing from then on (the parts it
    forecast before stay); the champion's forecasts are stored all the same.
    """
    from model_bundle.outputs import pyfunc_inputs
    from model_registry.provenance import trusted_model
    from model_registry.registry import champion_version

    name = settings.model_name(dataset.name)
    version = champion_version(settings, name)
    if version is None:
        raise LookupError(f"{name} has no champion to forecast with")
    entities = 0
    failed: set[str] = set()
    with contextlib.ExitStack() as stack:
        champion = stack.enter_context(trusted_model(settings, name, version))
        shadows: dict[str, Any] = {}
        for shadow in shadow_versions(settings, name, version):
            try:
                shadows[shadow] = stack.enter_context(trusted_model(settings, name, shadow))
            except Exception:  # a shadow that cannot forecast never keeps the champion's forecasts from the table
                log.exception("%s v%s cannot be loaded to forecast in the shadow of v%s", name, shadow, version)

        def predicted(model: Any, rows: pd.DataFrame) -> Any:
            return model.predict(pyfunc_inputs(model.metadata.get_input_schema(), rows, dataset.entity_column))

        def day_rows() -> Iterator[store.ForecastRow]:
            nonlocal entities
            for rows in newest_feature_parts(settings, dataset, data_date, per_part):
                entities += len(rows)
                output = predicted(champion, rows)
                yield from _rows(dataset, name, version, rows, output, data_date, BATCH, dag_run_id)
                for shadow, model in shadows.items():
                    if shadow in failed:
                        continue
                    try:
                        output = predicted(model, rows)
                    except Exception:
                        failed.add(shadow)
                        log.exception(
                            "%s v%s cannot forecast in the shadow of v%s for %s", name, shadow, version, data_date
                        )
                        continue
                    yield from _rows(dataset, name, shadow, rows, output, data_date, SHADOW, dag_run_id)

        store.upgrade(settings)
        written = store.replace_day(settings, dataset.name, data_date, day_rows())
    kept = [shadow for shadow in shadows if shadow not in failed]
    log.info(
        "issued %d forecasts of %s v%s (shadows: %s) for %s (%d entities)",
        written, name, version, ", ".join(f"v{s}" for s in kept) or "none", data_date, entities,
    )  # fmt: skip
    return IssuedForecasts(
        dataset=dataset.name,
        data_date=data_date,
        model_name=name,
        model_version=version,
        entities=entities,
        rows=written,
        shadow_versions=kept,
    )


def _rows(
    dataset: DatasetConfig,
    name: str,
    version: str,
    rows: pd.DataFrame,
    output: Any,
    data_date: date,
    source: str,
    dag_run_id: str | None,
) -> Iterator[store.ForecastRow]:
    """One version's forecasts (``output``, its bundle's answer to ``rows``) as the table's rows."""
    from model_bundle.outputs import bands_of, point_forecast

    predicted, bands = point_forecast(output), bands_of(output)
    for n, (stamp, entity, values) in enumerate(
        zip(rows[EVENT_TIMESTAMP], rows[dataset.entity_column], predicted, strict=True)
    ):
        issue_time = pd.Timestamp(stamp).to_pydatetime()
        targets = dataset.frequency.ahead(issue_time, len(values))
        for step, value in enumerate(values, start=1):
            yield store.ForecastRow(
                dataset=dataset.name,
                entity_id=str(entity),
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
