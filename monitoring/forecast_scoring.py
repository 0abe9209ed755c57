"""Realized accuracy: stored forecasts scored against what really happened.

When a day of data is validated, every stored forecast (batch, shadow and online) whose target time that
data now covers gets its actual, its error and seasonal naive's error on the same target (the value
one or more seasons before the target, as the baseline family forecasts it). A forecast is scored
once: a re-run of a day, or a day whose source was corrected, replaces the scores of the targets
that day holds, and a forecast issued again (its old score goes with the old row) is scored by the
next run. The figures of the day's targets go to the Pushgateway and to the MLflow run of each model
version that issued them; the streak of days the champion did worse than naive feeds an alert.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from core.partitions import SERIES_PER_PART, validated_rows
from core.pushgateway import Figure, push_figures
from core.settings import Settings
from core.windows import end_of
from forecast_store import store
from forecast_store.schema import BATCH, DAILY_SOURCES
from model_bundle.intervals import level_key
from monitoring.outcomes import IntervalAccuracy, RealizedAccuracy, ScoredForecasts

log = logging.getLogger(__name__)

STREAK_LOOKBACK = timedelta(days=90)  # how far back the days-above-naive streak is counted


def _actuals(
    settings: Settings, dataset: DatasetConfig, data_date: date, entities: list[str], since: pd.Timestamp
) -> pd.Series:
    """The target of ``entities`` by entity and time (UTC) from ``since`` on, as the day's validated
    partition knows it: read from the row groups that hold those entities (the partition is sorted
    by entity), only the columns scoring looks up."""
    rows = validated_rows(settings, dataset, data_date)
    frame = rows.where(dataset.entity_column, entities)
    frame = frame[pd.to_datetime(frame[dataset.timestamp_column], utc=True) >= since]
    stamps = pd.to_datetime(frame[dataset.timestamp_column], utc=True)
    index = pd.MultiIndex.from_arrays([frame[dataset.entity_column].astype(str), stamps], names=["entity", "time"])
    actuals = pd.Series(frame[dataset.target].to_numpy(dtype=np.float64), index=index).dropna()
    return actuals[~actuals.index.duplicated(keep="last")]


def _lookup(actuals: pd.Series, entities: list[str], times: list[pd.Timestamp]) -> np.ndarray:
    wanted = pd.MultiIndex.from_arrays([entities, pd.DatetimeIndex(times)], names=["entity", "time"])
    return actuals.reindex(wanted).to_numpy(dtype=np.float64)


def naive_lag(dataset: DatasetConfig, step: int) -> int:
    """How many steps before its target seasonal naive's forecast of step ``step`` looks: the fewest
    whole seasons that reach back to the issue time."""
    seasons = -(-step // dataset.seasonal_period)
    return seasons * dataset.seasonal_period


@dataclass(frozen=True)
class PartToScore:
    """The due forecasts of some entities, to be scored with ``data_date``'s actuals: one task of the
    engine."""

    settings: Settings
    dataset: DatasetConfig
    data_date: date
    entities: list[str]
    dag_run_id: str | None


@dataclass(frozen=True)
class PartScores:
    due: int
    scores: list[store.Score]


def score_part(part: PartToScore) -> PartScores:
    """The scores of a part's due forecasts (run by the engine, in this process or a Ray worker):
    those whose target is in the day (scored again: the day may have been corrected) and those before
    it without a score; a forecast whose target has no actual stays unscored."""
    settings, dataset, data_date = part.settings, part.dataset, part.data_date
    day_start = end_of(data_date) - timedelta(days=1)
    due = store.due(settings, dataset.name, until=end_of(data_date), rescore_from=day_start, entities=part.entities)
    if not due:
        return PartScores(0, [])
    entities = [f.entity_id for f in due]
    targets = pd.DatetimeIndex([pd.Timestamp(f.target_time) for f in due])
    looked_back = dataset.frequency.shift_each(targets, [-naive_lag(dataset, f.step) for f in due])
    actuals = _actuals(settings, dataset, data_date, part.entities, min(min(looked_back), targets.min()))
    actual = _lookup(actuals, entities, list(targets))
    naive = _lookup(actuals, entities, list(looked_back))
    scores = [
        store.Score(
            forecast_id=f.id,
            dataset=dataset.name,
            target_date=f.target_time.astimezone(UTC).date(),
            actual=float(a),
            error=f.value - float(a),
            naive_value=None if np.isnan(n) else float(n),
            naive_error=None if np.isnan(n) else float(n) - float(a),
            actuals_date=data_date,
            dag_run_id=part.dag_run_id,
        )
        for f, a, n in zip(due, actual, naive, strict=True)
        if not np.isnan(a)
    ]
    return PartScores(len(due), scores)


def score_forecasts(
    settings: Settings,
    dataset: DatasetConfig,
    data_date: date,
    dag_run_id: str | None = None,
    per_part: int = SERIES_PER_PART,
) -> int:
    """Score what ``data_date``'s validated data can score and store the scores (:func:`score_part`);
    returns how many were scored.

    The entities with due forecasts go ``per_part`` at a time through the settings' engine
    (:mod:`core.engine`): a part's due forecasts and actuals are read and scored in a task, and its
    scores stored as they come back, a transaction a part (a re-run scores the same forecasts
    again and replaces their scores): memory holds a few parts, whatever the number of series."""
    from core.engine import engine

    store.upgrade(settings)
    day_start = end_of(data_date) - timedelta(days=1)
    names = store.due_entities(settings, dataset.name, until=end_of(data_date), rescore_from=day_start)
    parts = (
        PartToScore(settings, dataset, data_date, names[start : start + per_part], dag_run_id)
        for start in range(0, len(names), per_part)
    )
    due = scored = 0
    for made in engine(settings.engine, settings.ray_address).imap(score_part, parts):
        due += made.due
        scored += store.replace_scores(settings, made.scores)
    log.info("scored %d of %d due forecasts of %s with the actuals of %s", scored, due, dataset.name, data_date)
    return scored


def realized(
    settings: Settings,
    dataset: str,
    by: list[str],
    target_from: date,
    target_to: date,
    sources: list[str] | None = None,
) -> dict[tuple[Any, ...], RealizedAccuracy]:
    """Per group of the columns ``by`` (:data:`forecast_store.store.ACCURACY_KEYS`), the MAE of the
    scored forecasts of the target days from ``target_from`` to ``target_to`` and seasonal naive's
    on the same targets (those naive could forecast), in all and per step, entity and model version:
    summed up by the database (:func:`forecast_store.store.accuracy`), whatever the number of
    forecasts."""

    def per(column: str) -> dict[tuple[Any, ...], list[store.Accuracy]]:
        groups: dict[tuple[Any, ...], list[store.Accuracy]] = {}
        for group in store.accuracy(settings, dataset, [*by, column], target_from, target_to, sources):
            groups.setdefault(group.key[: len(by)], []).append(group)
        return groups

    steps, entities, versions = per("step"), per("entity_id"), per("model_version")
    return {
        whole.key: RealizedAccuracy(
            forecasts=whole.forecasts,
            mae=whole.mae,
            naive_mae=whole.naive_mae,
            mae_on_naive_targets=whole.mae_on_naive_targets,
            mae_per_step={str(g.key[-1]): g.mae for g in steps[whole.key]},
            naive_mae_per_step={str(g.key[-1]): g.naive_mae for g in steps[whole.key] if g.naive_mae is not None},
            mae_per_entity={str(g.key[-1]): g.mae for g in entities[whole.key]},
            mae_per_version={str(g.key[-1]): g.mae for g in versions[whole.key]},
        )
        for whole in store.accuracy(settings, dataset, by, target_from, target_to, sources)
    }


def interval_accuracy(
    settings: Settings,
    dataset: str,
    by: list[str],
    target_from: date,
    target_to: date,
    sources: list[str] | None = None,
) -> dict[tuple[Any, ...], list[IntervalAccuracy]]:
    """Per group of the columns ``by``, each level's coverage, mean width and interval score of the
    bands of the scored forecasts of the target days from ``target_from`` to ``target_to``, in all
    and per step, narrowest level first; summed up by the database
    (:func:`forecast_store.store.band_accuracy`)."""
    steps: dict[tuple[Any, ...], list[store.BandAccuracy]] = {}
    for group in store.band_accuracy(settings, dataset, [*by, "step"], target_from, target_to, sources):
        key = (*group.key[: len(by)], group.key[-1])  # the group's and the level's
        steps.setdefault(key, []).append(group)
    out: dict[tuple[Any, ...], list[IntervalAccuracy]] = {}
    for whole in store.band_accuracy(settings, dataset, by, target_from, target_to, sources):
        level = whole.key[-1]
        of_steps = steps[whole.key]
        out.setdefault(whole.key[:-1], []).append(
            IntervalAccuracy(
                level=float(level),
                forecasts=whole.forecasts,
                coverage=whole.coverage,
                mean_width=whole.mean_width,
                interval_score=whole.interval_score,
                coverage_per_step={str(g.key[-2]): g.coverage for g in of_steps},
                width_per_step={str(g.key[-2]): g.mean_width for g in of_steps},
            )
        )
    return out


def days_above_naive(daily: dict[date, tuple[float, float]], data_date: date) -> int:
    """How many days in a row, up to ``data_date``, the batch forecasts' realized MAE was above
    seasonal naive's on the same targets (``daily``: each day's pair of them; a day without such
    targets ends the streak)."""
    streak, day = 0, data_date
    while day in daily and daily[day][0] > daily[day][1]:
        streak, day = streak + 1, day - timedelta(days=1)
    return streak


def batch_against_naive(settings: Settings, dataset: str, data_date: date) -> dict[date, tuple[float, float]]:
    """Per target day of the :data:`STREAK_LOOKBACK` up to ``data_date``, the batch forecasts' MAE and
    seasonal naive's, on the targets naive could forecast."""
    days = store.accuracy(settings, dataset, ["target_date"], data_date - STREAK_LOOKBACK, data_date, [BATCH])
    return {
        day.key[0]: (day.mae_on_naive_targets, day.naive_mae)
        for day in days
        if day.mae_on_naive_targets is not None and day.naive_mae is not None
    }


def score_day(
    settings: Settings, dataset: DatasetConfig, data_date: date, dag_run_id: str | None = None
) -> ScoredForecasts:
    """The scoring job of one day: score, then sum up the day's targets per source."""
    scored = score_forecasts(settings, dataset, data_date, dag_run_id)
    name, week = dataset.name, data_date - timedelta(days=6)
    return ScoredForecasts(
        dataset=name,
        data_date=data_date,
        scored=scored,
        unscored_due=store.count_due_unscored(settings, name, end_of(data_date)),
        realized={
            str(key[0]): found for key, found in realized(settings, name, ["source"], data_date, data_date).items()
        },
        days_above_naive=days_above_naive(batch_against_naive(settings, name, data_date), data_date),
        intervals={
            str(key[0]): levels
            for key, levels in interval_accuracy(settings, name, ["source"], data_date, data_date).items()
        },
        coverage_7d={
            level_key(level.level): level.coverage
            for levels in interval_accuracy(settings, name, [], week, data_date, [BATCH]).values()
            for level in levels
        },
    )


def log_to_versions(settings: Settings, dataset: DatasetConfig, data_date: date) -> list[str]:
    """Log each model version's realized MAE on the day's batch targets (as champion, or in its shadow)
    to that version's MLflow run (the run it was trained in); returns the versions logged."""
    from mlflow.entities import Metric

    from model_registry.tracking import client, require_configured

    require_configured(settings)
    versions = realized(
        settings, dataset.name, ["model_name", "model_version"], data_date, data_date, list(DAILY_SOURCES)
    )
    mlflow = client(settings)
    stamp = int(end_of(data_date).timestamp() * 1000)
    step = (data_date - date(1970, 1, 1)).days  # the day, as MLflow's integer step
    logged = []
    for (name, version), accuracy in versions.items():
        figures = {"realized_mae": accuracy.mae, "realized_forecasts": float(accuracy.forecasts)}
        if accuracy.naive_mae is not None:
            figures["realized_naive_mae"] = accuracy.naive_mae
        figures |= {f"realized_mae_step_{h}": v for h, v in accuracy.mae_per_step.items()}
        run_id = str(mlflow.get_model_version(str(name), str(version)).run_id)
        mlflow.log_batch(run_id, metrics=[Metric(k, v, stamp, step) for k, v in figures.items()])
        logged.append(str(version))
    return logged


def publish(settings: Settings, dataset: DatasetConfig, outcome: ScoredForecasts) -> bool:
    """Push the day's realized accuracy (per source and step, with naive's on the same targets), its
    bands' coverage, and the streak of days above naive, next to the streak the dataset allows."""
    figures = accuracy_figures(outcome) + band_figures(outcome) + streak_figures(dataset, outcome)
    return push_figures(settings, "forecast_scoring", {"dataset": dataset.name}, figures)


def accuracy_figures(outcome: ScoredForecasts) -> list[Figure]:
    """MAE per source, step and model version, with seasonal naive's on the same targets."""
    figures: list[Figure] = []
    for source, accuracy in outcome.realized.items():
        steps = {"all": (accuracy.mae, accuracy.naive_mae)} | {
            h: (mae, accuracy.naive_mae_per_step.get(h)) for h, mae in accuracy.mae_per_step.items()
        }
        for step, (mae, naive_mae) in steps.items():
            labels = {"source": source, "step": step}
            figures.append(
                Figure("mlops_realized_mae", "MAE of the forecasts whose targets the day held.", mae, labels)
            )
            if naive_mae is not None:
                figures.append(
                    Figure("mlops_realized_naive_mae", "Seasonal naive's MAE on the same targets.", naive_mae, labels)
                )
        figures += [
            Figure(
                "mlops_realized_version_mae",
                "MAE per model version of the forecasts whose targets the day held (champion: batch; "
                "previous champion and newer challenger: shadow).",
                mae,
                {"source": source, "version": version},
            )
            for version, mae in accuracy.mae_per_version.items()
        ]
        figures.append(
            Figure(
                "mlops_realized_forecasts",
                "Forecasts scored on the day's targets.",
                accuracy.forecasts,
                {"source": source},
            )
        )
    return figures


def band_figures(outcome: ScoredForecasts) -> list[Figure]:
    """Coverage, width and interval score of the day's bands per level (and coverage per step), and
    the batch bands' coverage over seven days beside their nominal level."""
    figures: list[Figure] = []
    for source, levels in outcome.intervals.items():
        for band in levels:
            labels = {"source": source, "level": level_key(band.level)}
            figures += [
                Figure(
                    "mlops_realized_coverage", "Share of the day's actuals inside the bands.", band.coverage, labels
                ),
                Figure("mlops_realized_interval_width", "Mean width of the day's bands.", band.mean_width, labels),
                Figure(
                    "mlops_realized_interval_score",
                    "Mean interval (Winkler) score of the day's bands: width plus 2/(1-level) times the miss.",
                    band.interval_score,
                    labels,
                ),
            ]
            figures += [
                Figure(
                    "mlops_realized_coverage_step",
                    "Share of the day's actuals inside the bands, per horizon step.",
                    value,
                    {**labels, "step": step},
                )
                for step, value in band.coverage_per_step.items()
            ]
    for level, coverage in outcome.coverage_7d.items():
        figures += [
            Figure(
                "mlops_realized_coverage_7d",
                "Share of the batch forecasts' actuals inside their bands over the last seven days.",
                coverage,
                {"level": level},
            ),
            Figure(
                "mlops_interval_nominal_coverage", "The bands' nominal level.", float(level) / 100, {"level": level}
            ),
        ]
    return figures


def streak_figures(dataset: DatasetConfig, outcome: ScoredForecasts) -> list[Figure]:
    """Days in a row above naive next to what the dataset allows, forecasts still due, the run's time."""
    return [
        Figure(
            "mlops_realized_days_above_naive",
            "Days in a row the batch forecasts' realized MAE was above seasonal naive's.",
            outcome.days_above_naive,
        ),
        Figure(
            "mlops_realized_max_days_above_naive",
            "Days in a row above naive that the dataset allows (daily.max_days_above_naive).",
            dataset.daily.max_days_above_naive,
        ),
        Figure("mlops_realized_unscored_due", "Forecasts past their target with no actual yet.", outcome.unscored_due),
        Figure("mlops_scoring_last_run_timestamp_seconds", "End of the last scoring run.", time.time()),
    ]
