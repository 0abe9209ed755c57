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
from datetime import UTC, date, timedelta

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from core.partitions import validated_rows
from core.pushgateway import Figure, push_figures
from core.settings import Settings
from core.windows import end_of
from forecast_store import store
from forecast_store.schema import BATCH, DAILY_SOURCES
from model_bundle.intervals import level_key, score_bands
from monitoring.outcomes import IntervalAccuracy, RealizedAccuracy, ScoredForecasts

log = logging.getLogger(__name__)

STREAK_LOOKBACK = timedelta(days=90)  # how far back the days-above-naive streak is counted


def _actuals(settings: Settings, dataset: DatasetConfig, data_date: date, since: pd.Timestamp) -> pd.Series:
    """The target by entity and time (UTC) from ``since`` on, as the day's validated partition knows
    it: the partition read a row group at a time, only the rows and columns scoring looks up."""
    columns = [dataset.entity_column, dataset.timestamp_column, dataset.target]
    frame = validated_rows(settings, dataset, data_date).since(dataset.timestamp_column, since, columns)
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


def score_forecasts(
    settings: Settings, dataset: DatasetConfig, data_date: date, dag_run_id: str | None = None
) -> list[store.Score]:
    """Score what ``data_date``'s validated data can score, store the scores and return them: the
    forecasts whose target is in that day (scored again: the day may have been corrected) and those
    before it that have no score yet. A forecast whose target has no actual stays unscored."""
    store.upgrade(settings)
    day_start = end_of(data_date) - timedelta(days=1)
    due = store.due(settings, dataset.name, until=end_of(data_date), rescore_from=day_start)
    if not due:
        return []
    entities = [f.entity_id for f in due]
    targets = pd.DatetimeIndex([pd.Timestamp(f.target_time) for f in due])
    looked_back = dataset.frequency.shift_each(targets, [-naive_lag(dataset, f.step) for f in due])
    actuals = _actuals(settings, dataset, data_date, min(min(looked_back), targets.min()))
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
            dag_run_id=dag_run_id,
        )
        for f, a, n in zip(due, actual, naive, strict=True)
        if not np.isnan(a)
    ]
    store.replace_scores(settings, scores)
    log.info(
        "scored %d of %d due forecasts of %s with the actuals of %s", len(scores), len(due), dataset.name, data_date
    )
    return scores


def _mae(errors: pd.Series) -> float | None:
    errors = errors.dropna()
    return float(errors.abs().mean()) if len(errors) else None


def realized(frame: pd.DataFrame) -> RealizedAccuracy | None:
    """MAE of scored forecasts and seasonal naive's on the same targets (those naive could forecast),
    in all and per step, entity and model version."""
    if frame.empty:
        return None
    fair = frame[frame["naive_error"].notna()]

    def by(column: str) -> dict[str, float]:
        return {str(key): float(group["error"].abs().mean()) for key, group in frame.groupby(column, sort=True)}

    return RealizedAccuracy(
        forecasts=len(frame),
        mae=float(frame["error"].abs().mean()),
        naive_mae=_mae(fair["naive_error"]),
        mae_on_naive_targets=_mae(fair["error"]),
        mae_per_step=by("step"),
        naive_mae_per_step={
            str(key): float(group["naive_error"].abs().mean()) for key, group in fair.groupby("step", sort=True)
        },
        mae_per_entity=by("entity_id"),
        mae_per_version=by("model_version"),
    )


def interval_accuracy(frame: pd.DataFrame) -> list[IntervalAccuracy]:
    """Each level's coverage, mean width and interval score over ``frame`` (rows of
    :func:`forecast_store.store.scored_intervals`), narrowest level first."""
    out = []
    for level, group in frame.groupby("level", sort=True):
        lower, upper, actual = (group[c].to_numpy(dtype=np.float64) for c in ("lower", "upper", "actual"))
        scores = score_bands(lower, upper, actual, float(level))
        steps = group.assign(inside=scores.inside, width=scores.width).groupby("step", sort=True)
        out.append(
            IntervalAccuracy(
                level=float(level),
                forecasts=len(group),
                coverage=float(scores.inside.mean()),
                mean_width=float(scores.width.mean()),
                interval_score=float(scores.interval_score.mean()),
                coverage_per_step={str(k): float(v) for k, v in steps["inside"].mean().items()},
                width_per_step={str(k): float(v) for k, v in steps["width"].mean().items()},
            )
        )
    return out


def days_above_naive(frame: pd.DataFrame, data_date: date) -> int:
    """How many days in a row, up to ``data_date``, the batch forecasts' realized MAE was above
    seasonal naive's on the same targets (a day without scores ends the streak)."""
    fair = frame[(frame["source"] == BATCH) & frame["naive_error"].notna()]
    daily = fair.groupby("target_date").agg(
        mae=("error", lambda e: e.abs().mean()), naive=("naive_error", lambda e: e.abs().mean())
    )
    streak, day = 0, data_date
    while day in daily.index and daily.loc[day, "mae"] > daily.loc[day, "naive"]:
        streak, day = streak + 1, day - timedelta(days=1)
    return streak


def score_day(
    settings: Settings, dataset: DatasetConfig, data_date: date, dag_run_id: str | None = None
) -> ScoredForecasts:
    """The scoring job of one day: score, then sum up the day's targets per source."""
    scored = score_forecasts(settings, dataset, data_date, dag_run_id)
    recent = pd.DataFrame(store.scored(settings, dataset.name, target_from=data_date - STREAK_LOOKBACK))
    columns = ["source", "target_date", "error", "naive_error", "step", "entity_id", "model_version"]
    recent = recent if not recent.empty else pd.DataFrame(columns=columns)
    of_day = recent[recent["target_date"] == data_date]
    by_source = {str(source): realized(group) for source, group in of_day.groupby("source", sort=True)}
    since = data_date - timedelta(days=6)
    bands = store.scored_intervals(settings, dataset.name, target_from=since, target_to=data_date)
    week = pd.DataFrame(bands, columns=["source", "step", "target_date", "level", "lower", "upper", "actual"])
    of_day_bands = week[week["target_date"] == data_date]
    return ScoredForecasts(
        dataset=dataset.name,
        data_date=data_date,
        scored=len(scored),
        unscored_due=store.count_due_unscored(settings, dataset.name, end_of(data_date)),
        realized={source: accuracy for source, accuracy in by_source.items() if accuracy is not None},
        days_above_naive=days_above_naive(recent, data_date),
        intervals={str(source): interval_accuracy(group) for source, group in of_day_bands.groupby("source")},
        coverage_7d={level_key(a.level): a.coverage for a in interval_accuracy(week[week["source"] == BATCH])},
    )


def log_to_versions(settings: Settings, dataset: DatasetConfig, data_date: date) -> list[str]:
    """Log each model version's realized MAE on the day's batch targets (as champion, or in its shadow)
    to that version's MLflow run (the run it was trained in); returns the versions logged."""
    from mlflow.entities import Metric

    from model_registry.tracking import client, require_configured

    require_configured(settings)
    frame = pd.DataFrame(store.scored(settings, dataset.name, target_from=data_date, target_to=data_date))
    if frame.empty:
        return []
    frame = frame[frame["source"].isin(DAILY_SOURCES)]
    mlflow = client(settings)
    stamp = int(end_of(data_date).timestamp() * 1000)
    step = (data_date - date(1970, 1, 1)).days  # the day, as MLflow's integer step
    logged = []
    for (name, version), group in frame.groupby(["model_name", "model_version"], sort=True):
        accuracy = realized(group)
        assert accuracy is not None
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
