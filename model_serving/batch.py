"""Batch forecasts: the champion forecasts every entity from the features known at the end of a day,
and the day's forecasts replace any earlier ones in the forecast table (a re-run of a day, or a day
whose source was corrected, leaves exactly its new rows).

The versions that do not serve forecast the same rows in the champion's shadow (source ``shadow``):
the previous champion, and a challenger newer than the champion. Scored like the champion's, their
forecasts tell on the same targets whether a promotion paid off, and how a challenger that was not
promoted would have done.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PartToForecast:
    """A part of entities' newest feature rows (:func:`newest_feature_parts`), to be forecast by each
    of ``versions`` of ``model_name`` (the champion first): one task of the engine."""

    settings: Settings
    model_name: str
    versions: tuple[str, ...]
    rows: pd.DataFrame
    entity_column: str


@dataclass(frozen=True)
class PartForecasts:
    """What each version answered for a part (its bundle's output), and why the others did not."""

    outputs: dict[str, Any]
    errors: dict[str, str]


class _Loaded:
    """The versions loaded in this process, the last few used kept: an engine's worker forecasts part
    after part with the same versions, and loads each once. A version's bundle is verified and
    copied by :func:`model_registry.provenance.trusted_model`, and its copy removed when it leaves."""

    KEEP = 4

    def __init__(self) -> None:
        self._held: collections.OrderedDict[tuple[str, str, str], tuple[contextlib.ExitStack, Any]] = (
            collections.OrderedDict()
        )

    def model(self, settings: Settings, name: str, version: str) -> Any:
        from model_registry import tracking
        from model_registry.provenance import trusted_model

        key = (settings.tracking_uri, name, version)
        if key in self._held:
            self._held.move_to_end(key)
            return self._held[key][1]
        tracking.configure(settings)  # a worker of the engine has not been pointed at the registry
        stack = contextlib.ExitStack()
        model = stack.enter_context(trusted_model(settings, name, version))
        self._held[key] = (stack, model)
        while len(self._held) > self.KEEP:
            self._held.popitem(last=False)[1][0].close()
        return model

    def release(self) -> None:
        while self._held:
            self._held.popitem()[1][0].close()


_LOADED = _Loaded()


def forecast_part(part: PartToForecast) -> PartForecasts:
    """Each version's forecasts of the part (run by the engine, in this process or a Ray worker). A
    shadow version that cannot load or forecast says why; the champion's failure raises."""
    from model_bundle.outputs import pyfunc_inputs

    outputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for n, version in enumerate(part.versions):
        try:
            model = _LOADED.model(part.settings, part.model_name, version)
            inputs = pyfunc_inputs(model.metadata.get_input_schema(), part.rows, part.entity_column)
            outputs[version] = model.predict(inputs)
        except Exception:
            if n == 0:
                raise
            errors[version] = traceback.format_exc()
    return PartForecasts(outputs, errors)


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

    The entities go ``per_part`` at a time (:func:`newest_feature_parts`): each part is forecast by
    every version on the settings' engine (:mod:`core.engine`: in this process, or a Ray task, where
    a per-series model's forecasts of many series spread over the cluster's workers), and its rows
    are sent to the table as its forecasts come back, in the parts' order: memory holds the few
    parts out, whatever the number of entities. On the in-process engine the versions' bundles load
    before the transaction starts (:func:`_load_before_writing`); the day's transaction lasts the
    forecast of its parts: on SQLite it holds the database's write lock meanwhile, and the service's
    answers wait in its spool until their writer gets the table again (:mod:`forecast_store.writer`);
    nothing is lost. A shadow version that cannot be loaded, or fails on a part, forecasts nothing
    from then on (the parts it forecast before stay); the champion's forecasts are stored all the same.
    """
    from core.engine import engine
    from model_registry.registry import champion_version

    name = settings.model_name(dataset.name)
    version = champion_version(settings, name)
    if version is None:
        raise LookupError(f"{name} has no champion to forecast with")
    shadows = shadow_versions(settings, name, version)
    failed: set[str] = set()
    drawn: collections.deque[pd.DataFrame] = collections.deque()
    entities = 0

    def parts() -> Iterator[PartToForecast]:
        for rows in newest_feature_parts(settings, dataset, data_date, per_part):
            drawn.append(rows)
            versions = (version, *(shadow for shadow in shadows if shadow not in failed))
            yield PartToForecast(settings, name, versions, rows, dataset.entity_column)

    def day_rows() -> Iterator[store.ForecastRow]:
        nonlocal entities
        for made in run.imap(forecast_part, parts()):
            rows = drawn.popleft()
            entities += len(rows)
            yield from _rows(dataset, name, version, rows, made.outputs[version], data_date, BATCH, dag_run_id)
            for shadow in shadows:
                if shadow in failed:
                    continue
                if shadow in made.errors:
                    failed.add(shadow)
                    log.error(
                        "%s v%s cannot forecast in the shadow of v%s for %s:\n%s",
                        name, shadow, version, data_date, made.errors[shadow],
                    )  # fmt: skip
                    continue
                yield from _rows(dataset, name, shadow, rows, made.outputs[shadow], data_date, SHADOW, dag_run_id)

    store.upgrade(settings)
    run = engine(settings.engine, settings.ray_address)
    try:
        if run.kind == "local":  # the parts run here: the versions load before the day's transaction starts
            _load_before_writing(settings, name, version, shadows, failed)
        written = store.replace_day(settings, dataset.name, data_date, day_rows())
    finally:
        _LOADED.release()  # the bundles this process loaded (the in-process engine's)
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


def _load_before_writing(settings: Settings, name: str, version: str, shadows: list[str], failed: set[str]) -> None:
    """Load the champion and the shadow versions in this process before the day's rows are written.
    Loading a bundle (its artifacts fetched from the registry, verified, its libraries imported) can
    take tens of seconds; inside the day's transaction it would hold SQLite's write lock as long, and
    every other writer and reader of the table waits at most its busy timeout (the service's ledger
    writer, the scoring, a person's query). A champion that cannot load fails the day before the
    table is touched; a shadow that cannot load forecasts nothing this day."""
    _LOADED.model(settings, name, version)
    for shadow in shadows:
        try:
            _LOADED.model(settings, name, shadow)
        except Exception:  # a shadow never keeps the champion's forecasts from the table
            failed.add(shadow)
            log.exception("%s v%s cannot be loaded to forecast in the shadow of v%s", name, shadow, version)


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
