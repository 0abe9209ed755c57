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
from datetime import date
from pathlib import Path
from typing import TypeVar

import pandas as pd

from core.columns import EVENT_TIMESTAMP, lag_name, numeric_feature_names, target_level_names
from core.dataset import DatasetConfig
from core.files import write_text_atomically
from core.settings import Settings
from core.windows import end_of
from feature_drift.outcomes import DriftOutcome, DriftResult, EntityDrift
from feature_store.features import features_since

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


def compare_windows(
    reference: pd.DataFrame, current: pd.DataFrame, dataset: DatasetConfig, out_dir: Path
) -> dict[str, EntityDrift]:
    """Per entity: a verdict, or none when either window is below the minimum; Evidently's HTML report
    for the ``drift_reports`` entities with the largest drift shares."""
    columns = drift_columns(dataset)
    key, minimum = dataset.entity_column, dataset.promotion.min_drift_rows
    reference = drift_view(reference, dataset).dropna(subset=columns)
    current = drift_view(current, dataset).dropna(subset=columns)
    entities: dict[str, EntityDrift] = {}
    # Each window sorted by entity once, its columns made arrays once: an entity's rows are a slice
    # (not one scan of the window per entity, nor a pandas selection per entity and column).
    reference, current = _by_entity(reference, key), _by_entity(current, key)
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
    # The reports a reader opens: the entities nearest to (or furthest past) the gate's limit.
    judged = sorted(
        (e for e in entities if entities[e].drift_share is not None), key=lambda e: -(entities[e].drift_share or 0.0)
    )
    for entity in judged[: dataset.promotion.drift_reports]:
        report = out_dir / _file_name(entity)
        ref_span, cur_span = spans["reference"][entity], spans["current"][entity]
        write_report(reference.iloc[slice(*ref_span)], current.iloc[slice(*cur_span)], columns, dataset, report)
        entities[entity] = entities[entity].model_copy(update={"report_path": str(report)})
    return entities


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


def drift_gate(
    settings: Settings,
    dataset: DatasetConfig,
    logical_date: date,
    fit_rows: pd.DataFrame,
    out_dir: Path,
    force: bool = False,
    forced_because: str = "",
) -> DriftResult:
    """Judge the newest ``drift_window`` (the current window) against the newest rows a version was
    fit on before it (:func:`reference_before` of ``fit_rows``); ``force`` turns a block into FORCED,
    recorded with ``forced_because``."""
    config = dataset.promotion
    current = current_window(settings, dataset, logical_date)
    reference = reference_before(fit_rows, current_span(dataset, logical_date)[0], dataset)
    entities = compare_windows(reference, current, dataset, out_dir)
    judged = {name: e for name, e in entities.items() if e.drift_share is not None}
    judged = dict(sorted(judged.items(), key=lambda item: -(item[1].drift_share or 0.0)))  # the most drifted first
    unjudged = sorted(set(entities) - set(judged))
    if not judged:
        outcome = DriftOutcome.NOT_ENOUGH_DATA
        reason = (
            f"not enough data: {len(current)} current and {len(reference)} reference rows; every entity needs "
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
            features = _named(drifted, lambda e: f": {', '.join(e.drifted_features)}", "; ")
            reason = f"drift share above {config.max_drift_share:.2f} ({shares}); drifted: {features}"
            if force:
                reason += f"; promotion forced: {forced_because or 'no reason given'}"
        else:
            outcome = DriftOutcome.PASSED
            reason = f"drift share at most {config.max_drift_share:.2f} ({shares})"
        if unjudged:
            reason += f"; not enough data for {_named(dict.fromkeys(unjudged), lambda _: '')}"
        log.info("drift gate %s: %s", outcome, reason)

    def span(rows: pd.DataFrame) -> tuple[str, str]:
        stamps = rows[EVENT_TIMESTAMP]
        return (stamps.min().isoformat(), stamps.max().isoformat()) if len(rows) else ("", "")

    (reference_start, reference_end), (current_start, current_end) = span(reference), span(current)
    return DriftResult(
        outcome=outcome,
        drift_share=max((e.drift_share or 0.0) for e in judged.values()) if judged else None,
        entities=entities,
        reference_rows=len(reference),
        current_rows=len(current),
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


def version_evidence(settings: Settings, dataset: DatasetConfig, model_name: str, version: str) -> pd.DataFrame:
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
    newest = pd.Timestamp(end)
    reach = dataset.promotion.drift_reference_span + dataset.promotion.drift_window
    return fit_rows_of(features_since(settings, dataset, newest - reach), newest, dataset)
