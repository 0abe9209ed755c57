"""Drift measurement (Evidently 0.7): a reference window of features against the most recent one.

Each entity (transformer, store, site) is compared with its own history: pooled rows of series
with different levels would hide a shift in one of them. Per entity, Evidently's per-feature drift
tests decide which features drifted and give the share of drifted features; an entity drifted when
its share is above ``max_drift_share``, and the verdict blocks when more than ``max_drifted_entities``
of the entities drifted (under ten entities, any one: with many series some drift by chance every
day, and a gate on any one of them would never pass), unless the run forces it, and then the
override and its reason are recorded. Too few rows give a clear "not enough data" outcome instead of a
verdict: small samples make the tests flag drift that is not there. Features are judged as the
models see them (:func:`drift_view`): the target's levels relative to its current value.

The promotion's drift gate (:mod:`model_validation.drift`) and the daily drift check of the
champion (:mod:`monitoring.champion_drift`) both judge with :func:`drift_gate`, against the newest rows
a version was fit on before the window judged (:func:`reference_before`, :func:`version_evidence`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

import pandas as pd

from core.columns import EVENT_TIMESTAMP, lag_name, numeric_feature_names, target_level_names
from core.dataset import DatasetConfig
from core.files import write_text_atomically
from core.objects import ParquetRows
from core.partitions import SERIES_PER_PART
from core.settings import Settings
from core.windows import end_of
from feature_drift.outcomes import DriftOutcome, DriftResult, EntityDrift
from feature_store.features import feature_table_location, features_since

log = logging.getLogger(__name__)


RELATIVE = "_vs_now"  # suffix of a target level taken as a change from the current value
T = TypeVar("T")
Span = tuple[int, int]  # rows [start, stop) of a frame
LISTED = 10  # entities named in a verdict's reason (the most drifted first); the others counted


def _relative_levels(dataset: DatasetConfig) -> tuple[str, list[str]] | None:
    """(anchor, levels) when drift is judged on levels relative to the current target value."""
    anchor = lag_name(dataset.target, 0)
    if not dataset.promotion.drift_relative_levels or anchor not in numeric_feature_names(dataset):
        return None
    return anchor, [c for c in target_level_names(dataset) if c != anchor]


def drift_columns(dataset: DatasetConfig) -> list[str]:
    """The columns drift is judged on: numeric features only (calendar values of a short window always
    'drift' from a long one), as :func:`drift_view` names them."""
    relative = _relative_levels(dataset)
    if relative is None:
        return numeric_feature_names(dataset)
    anchor, levels = relative
    return [f"{c}{RELATIVE}" if c in levels else c for c in numeric_feature_names(dataset) if c != anchor]


def drift_view(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """The features as the models see them: the target's lags and rolling means as changes from its
    current value (lag 0), which is left out; covariates and spreads as they are.

    The tree families forecast the change from the current value with the other levels relative to
    it, NLinear subtracts the last value: a level that moves on changes none of what they forecast
    from but the current value itself, so it is not drift by itself (a trending series' raw lags
    never match its training years). A change in how the target moves (its swings, its daily shape)
    or in a covariate still is.
    """
    relative = _relative_levels(dataset)
    if relative is None:
        return frame
    anchor, levels = relative
    view = frame.drop(columns=[anchor, *levels])
    changes = frame[levels].sub(frame[anchor], axis=0)
    changes.columns = [f"{c}{RELATIVE}" for c in levels]
    return pd.concat([view, changes], axis=1)


def measure_drift(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], dataset: DatasetConfig
) -> tuple[float, dict[str, float], list[str]]:
    """Evidently's per-column drift tests, as its DataDriftPreset runs them (the configured method and
    threshold, or Evidently's choice by sample size, on each column's finite values); returns (share
    drifted, score per column, drifted columns).

    A column drifted when Evidently's drift test for it fails (p-value below, or distance at or
    above, the threshold of the configured method). The tests are called without the report: the
    report draws a figure for every column, which costs about a hundred times the tests themselves,
    so it is drawn only where it is read (:func:`write_report`).
    """
    return _Windows(reference, columns).measure(
        (0, len(reference)), _Windows(current, columns), (0, len(current)), dataset
    )


class _Windows:
    """One window's drift columns, each a numpy array once (not a pandas selection per entity and
    column: a hundred thousand series, a dozen columns each); an entity's rows are a slice of them."""

    def __init__(self, frame: pd.DataFrame, columns: list[str]) -> None:
        self.columns = {column: frame[column].to_numpy() for column in columns}
        self.floats = {column: values.dtype.kind == "f" for column, values in self.columns.items()}

    def values(self, column: str, rows: Span) -> pd.Series:
        """The column's finite values in ``rows``."""
        import numpy as np

        values = self.columns[column][slice(*rows)]
        if values.dtype.kind in "fiu":
            return pd.Series(values[np.isfinite(values)], copy=False)
        kept = pd.Series(values).replace([-np.inf, np.inf], np.nan).dropna()
        return kept.reset_index(drop=True)

    def measure(
        self, rows: Span, current: _Windows, current_rows: Span, dataset: DatasetConfig
    ) -> tuple[float, dict[str, float], list[str]]:
        """:func:`measure_drift` of this window's ``rows`` against ``current``'s ``current_rows``."""
        from evidently.core.datasets import infer_column_type
        from evidently.legacy.calculations.stattests import get_stattest
        from evidently.legacy.core import ColumnType

        config = dataset.promotion
        scores: dict[str, float] = {}
        drifted: list[str] = []
        for column in self.columns:
            # The column's type as the report infers it from the current window (Evidently's own
            # inference, without the statistics a Dataset computes for every column, which cost twice
            # the tests): a float column is numerical whatever its values; an integer column with few
            # values is categorical, and gets a test for categories (the configured method is for numbers).
            kind = (
                ColumnType.Numerical
                if current.floats[column]
                else infer_column_type(pd.Series(current.columns[column][slice(*current_rows)]))
            )
            method = config.drift_method if kind is ColumnType.Numerical else None
            ref, cur = self.values(column, rows), current.values(column, current_rows)
            result = get_stattest(ref, cur, kind, method)(ref, cur, kind, config.drift_threshold)
            scores[column] = float(result.drift_score)
            if result.drifted:
                drifted.append(column)
        columns = len(self.columns)
        return (len(drifted) / columns if columns else 0.0), scores, sorted(drifted)


def write_report(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], dataset: DatasetConfig, path: Path
) -> None:
    """Evidently's HTML report of one entity's windows: the DataDriftPreset with its tests, a figure
    per column."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    config = dataset.promotion
    preset = DataDriftPreset(
        columns=columns,
        drift_share=config.max_drift_share,
        num_method=config.drift_method,
        threshold=config.drift_threshold,
    )
    snapshot = Report([preset], include_tests=True).run(
        reference_data=reference[columns], current_data=current[columns]
    )
    write_text_atomically(snapshot.get_html_str(as_iframe=False), path)


def _file_name(entity: str) -> str:
    return "drift_" + re.sub(r"[^A-Za-z0-9_.-]", "_", entity) + ".html"


def _by_entity(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """``frame``'s rows grouped by entity (a stable sort: each entity's rows in their order)."""
    names = frame[key].astype(str)
    return frame.assign(**{key: names}).sort_values(key, kind="stable").reset_index(drop=True)


def _spans(frame: pd.DataFrame, key: str) -> dict[str, Span]:
    """Each entity's rows [start, stop) in a frame :func:`_by_entity` sorted."""
    import numpy as np

    names = frame[key].to_numpy()
    if len(names) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    stops = np.r_[starts[1:], len(names)]
    return {str(names[a]): (int(a), int(b)) for a, b in zip(starts, stops, strict=True)}


def judge_windows(reference: pd.DataFrame, current: pd.DataFrame, dataset: DatasetConfig) -> dict[str, EntityDrift]:
    """Per entity of either window: a verdict, or none when either window is below the minimum."""
    columns = drift_columns(dataset)
    key, minimum = dataset.entity_column, dataset.promotion.min_drift_rows
    reference, current = _prepared(reference, dataset), _prepared(current, dataset)
    entities: dict[str, EntityDrift] = {}
    # Each window sorted by entity once, its columns made arrays once: an entity's rows are a slice
    # (not one scan of the window per entity, nor a pandas selection per entity and column).
    spans = {name: _spans(frame, key) for name, frame in (("reference", reference), ("current", current))}
    windows = _Windows(reference, columns), _Windows(current, columns)
    for entity in sorted(spans["reference"].keys() | spans["current"].keys()):
        ref_span, cur_span = spans["reference"].get(entity, (0, 0)), spans["current"].get(entity, (0, 0))
        ref_rows, cur_rows = ref_span[1] - ref_span[0], cur_span[1] - cur_span[0]
        if ref_rows >= minimum and cur_rows >= minimum:
            share, scores, drifted = windows[0].measure(ref_span, windows[1], cur_span, dataset)
            entities[entity] = EntityDrift(
                drift_share=share,
                drifted_features=drifted,
                scores=scores,
                reference_rows=ref_rows,
                current_rows=cur_rows,
            )
        else:
            entities[entity] = EntityDrift(drift_share=None, reference_rows=ref_rows, current_rows=cur_rows)
    return entities


def most_drifted(entities: Mapping[str, EntityDrift], dataset: DatasetConfig) -> list[str]:
    """The ``drift_reports`` entities with the largest drift shares: the reports a reader opens."""
    judged = sorted(
        (e for e in entities if entities[e].drift_share is not None), key=lambda e: -(entities[e].drift_share or 0.0)
    )
    return judged[: dataset.promotion.drift_reports]


def with_reports(
    entities: dict[str, EntityDrift],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    dataset: DatasetConfig,
    out_dir: Path,
) -> dict[str, EntityDrift]:
    """``entities`` with Evidently's HTML report of each of the :func:`most_drifted` ones, drawn from
    their rows in ``reference`` and ``current`` (windows that hold at least those entities)."""
    key, columns = dataset.entity_column, drift_columns(dataset)
    reported = most_drifted(entities, dataset)
    if not reported:
        return entities
    windows = [_prepared(frame[frame[key].astype(str).isin(reported)], dataset) for frame in (reference, current)]
    spans = [_spans(frame, key) for frame in windows]
    for entity in reported:
        report = out_dir / _file_name(entity)
        write_report(
            windows[0].iloc[slice(*spans[0][entity])],
            windows[1].iloc[slice(*spans[1][entity])],
            columns,
            dataset,
            report,
        )
        entities[entity] = entities[entity].model_copy(update={"report_path": str(report)})
    return entities


def compare_windows(
    reference: pd.DataFrame, current: pd.DataFrame, dataset: DatasetConfig, out_dir: Path
) -> dict[str, EntityDrift]:
    """Per entity: a verdict, or none when either window is below the minimum (:func:`judge_windows`);
    Evidently's HTML report for the ``drift_reports`` entities with the largest drift shares."""
    return with_reports(judge_windows(reference, current, dataset), reference, current, dataset, out_dir)


def _prepared(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """A window's rows as drift is judged on them: :func:`drift_view`, rows missing a drift column
    left out, grouped by entity."""
    return _by_entity(drift_view(frame, dataset).dropna(subset=drift_columns(dataset)), dataset.entity_column)


def current_window(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    """The newest ``drift_window`` of the offline feature source, up to the end of ``logical_date``:
    the rows the online store was materialized from, so the inputs the service forecasts with."""
    start, end = current_span(dataset, logical_date)
    features = features_since(settings, dataset, start)
    return features[features[EVENT_TIMESTAMP] < end]


def current_span(dataset: DatasetConfig, logical_date: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of the current window of ``logical_date``."""
    end = pd.Timestamp(end_of(logical_date))
    return end - dataset.promotion.drift_window, end


def reference_before(reference: pd.DataFrame, start: pd.Timestamp, dataset: DatasetConfig) -> pd.DataFrame:
    """Per entity, the newest ``drift_reference_span`` of ``reference``'s rows before ``start``: the
    rows judged are never part of what they are judged against (a window compared with itself passes
    whatever happened in it)."""
    before = reference[reference[EVENT_TIMESTAMP] < start]
    if before.empty:
        return before
    newest = before.groupby(before[dataset.entity_column].astype(str), sort=False)[EVENT_TIMESTAMP].transform("max")
    return before[before[EVENT_TIMESTAMP] > newest - dataset.promotion.drift_reference_span]


def _named(entities: Mapping[str, T], says: Callable[[T], str], separator: str = ", ") -> str:
    """The first :data:`LISTED` entities, each followed by what ``says`` of it; past them, how many more
    (a dataset of many series names a few, not all)."""
    names = list(entities)
    listed = separator.join(f"{name}{says(entities[name])}" for name in names[:LISTED])
    return listed + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")


@dataclass(frozen=True)
class Evidence:
    """The rows a version was fit on, as they lie in a Parquet file sorted by entity (the feature
    table, or a run's training set): those stamped in (``start``, ``end``]. The drift gate reads them
    a part of entities at a time, never the whole span of every series at once."""

    location: str
    start: pd.Timestamp
    end: pd.Timestamp

    def of(self, rows: pd.DataFrame) -> pd.DataFrame:
        stamps = rows[EVENT_TIMESTAMP]
        return rows[(stamps > self.start) & (stamps <= self.end)]


class _Held:
    """Rows held in memory, read as :class:`core.objects.ParquetRows` reads a file's."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def values(self, column: str) -> list[str]:
        return sorted(self.frame[column].astype(str).unique())

    def where(self, column: str, values: list[str]) -> pd.DataFrame:
        return self.frame[self.frame[column].astype(str).isin(values)]


@dataclass
class _Seen:
    """Rows and time span of the windows judged, over every part."""

    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None

    def add(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        stamps = rows[EVENT_TIMESTAMP]
        self.rows += len(rows)
        self.first = stamps.min() if self.first is None else min(self.first, stamps.min())
        self.last = stamps.max() if self.last is None else max(self.last, stamps.max())

    def span(self) -> tuple[str, str]:
        if self.first is None or self.last is None:
            return "", ""
        return self.first.isoformat(), self.last.isoformat()


def drift_gate(
    settings: Settings,
    dataset: DatasetConfig,
    logical_date: date,
    fit_rows: pd.DataFrame | Evidence,
    out_dir: Path,
    force: bool = False,
    forced_because: str = "",
    per_part: int = SERIES_PER_PART,
) -> DriftResult:
    """Judge the newest ``drift_window`` (the current window) against the newest rows a version was
    fit on before it (:func:`reference_before` of ``fit_rows``: a frame, or the :class:`Evidence` in a
    file); ``force`` turns a block into FORCED, recorded with ``forced_because``.

    Entities are judged ``per_part`` at a time, each part's windows read from the row groups that
    hold its entities: memory holds a part's windows, whatever the number of series. The reports of
    the most drifted entities are drawn at the end from their rows, read again.
    """
    config = dataset.promotion
    key = dataset.entity_column
    start, end = current_span(dataset, logical_date)
    features = ParquetRows(feature_table_location(settings, dataset), settings)
    fitted: ParquetRows | _Held
    if isinstance(fit_rows, Evidence):
        fitted = features if fit_rows.location == features.location else ParquetRows(fit_rows.location, settings)
        evidence = fit_rows
    else:
        fitted, evidence = _Held(fit_rows), None

    def windows(names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows = features.where(key, names)
        stamps = rows[EVENT_TIMESTAMP]
        current = rows[(stamps >= start) & (stamps < end)]
        fit = rows if fitted is features else fitted.where(key, names)
        reference = reference_before(fit if evidence is None else evidence.of(fit), start, dataset)
        return reference, current

    names = sorted(set(features.values(key)) | set(fitted.values(key)))
    entities: dict[str, EntityDrift] = {}
    seen = {"reference": _Seen(), "current": _Seen()}
    for first in range(0, len(names), per_part):
        reference, current = windows(names[first : first + per_part])
        entities.update(judge_windows(reference, current, dataset))
        seen["reference"].add(reference)
        seen["current"].add(current)
    reported = most_drifted(entities, dataset)
    if reported:
        entities = with_reports(entities, *windows(reported), dataset, out_dir)
    judged = {name: e for name, e in entities.items() if e.drift_share is not None}
    judged = dict(sorted(judged.items(), key=lambda item: -(item[1].drift_share or 0.0)))  # the most drifted first
    unjudged = sorted(set(entities) - set(judged))
    if not judged:
        outcome = DriftOutcome.NOT_ENOUGH_DATA
        reason = (
            f"not enough data: {seen['current'].rows} current and {seen['reference'].rows} reference rows; every "
            "entity needs "
            f"at least {config.min_drift_rows} in each window for a verdict"
        )
        log.warning("drift gate: %s", reason)
    else:
        verdict = DriftResult(
            outcome=DriftOutcome.PASSED,
            drift_share=None,
            entities=judged,
            max_drift_share=config.max_drift_share,
            max_drifted_entities=config.max_drifted_entities,
        )
        over = verdict.drifted_entities
        counted = (
            f"{len(over)} of {len(judged)} entities above it, {len(over) / len(judged):.0%}; drift counts above "
            f"{config.max_drifted_entities:.0%}"
        )
        shares = f"{_named(judged, lambda e: f' {e.drift_share:.2f}')}; {counted}"
        if verdict.drifted:
            outcome = DriftOutcome.FORCED if force else DriftOutcome.BLOCKED
            drifted = {name: judged[name] for name in over}
            named = _named(drifted, lambda e: f": {', '.join(e.drifted_features)}", "; ")
            reason = f"drift share above {config.max_drift_share:.2f} ({shares}); drifted: {named}"
            if force:
                reason += f"; promotion forced: {forced_because or 'no reason given'}"
        else:
            outcome = DriftOutcome.PASSED
            reason = f"drift share at most {config.max_drift_share:.2f} ({shares})"
        if unjudged:
            reason += f"; not enough data for {_named(dict.fromkeys(unjudged), lambda _: '')}"
        log.info("drift gate %s: %s", outcome, reason)

    (reference_start, reference_end), (current_start, current_end) = seen["reference"].span(), seen["current"].span()
    return DriftResult(
        outcome=outcome,
        drift_share=max((e.drift_share or 0.0) for e in judged.values()) if judged else None,
        entities=entities,
        reference_rows=seen["reference"].rows,
        current_rows=seen["current"].rows,
        max_drift_share=config.max_drift_share,
        max_drifted_entities=config.max_drifted_entities,
        reason=reason,
        reference_start=reference_start,
        reference_end=reference_end,
        current_start=current_start,
        current_end=current_end,
    )


def fit_rows_of(features: pd.DataFrame, end: pd.Timestamp, dataset: DatasetConfig) -> pd.DataFrame:
    """The rows of ``features`` a version fit on rows up to ``end`` may be judged against: its newest
    ``drift_reference_span`` and one ``drift_window`` more (the part :func:`reference_before` cuts off
    where the current window starts before ``end``)."""
    stamps = features[EVENT_TIMESTAMP]
    reach = dataset.promotion.drift_reference_span + dataset.promotion.drift_window
    return features[(stamps > end - reach) & (stamps <= end)]


def evidence_of(location: str, end: pd.Timestamp, dataset: DatasetConfig) -> Evidence:
    """The rows of the file at ``location`` that a version fit on rows up to ``end`` may be judged
    against (:func:`fit_rows_of`'s)."""
    return Evidence(location, end - (dataset.promotion.drift_reference_span + dataset.promotion.drift_window), end)


def version_evidence(settings: Settings, dataset: DatasetConfig, model_name: str, version: str) -> Evidence:
    """The newest rows a registered version was fit on, read back from the offline feature source up to
    the end of its ``data_window`` tag (a refit: every labelled row; otherwise its training rows), or its
    run's ``training_end`` for a version registered without that tag."""
    from model_registry.registry import data_window
    from model_registry.tracking import client

    mlflow_client = client(settings)
    model_version = mlflow_client.get_model_version(model_name, version)
    end = data_window(dict(model_version.tags))[1]
    if end is None:
        end = mlflow_client.get_run(str(model_version.run_id)).data.params["training_end"]
    return evidence_of(feature_table_location(settings, dataset), pd.Timestamp(end), dataset)
