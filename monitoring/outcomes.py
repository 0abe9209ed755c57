"""What the daily watchers of the serving models find, as typed values: the drift check of the
champion (:mod:`monitoring.champion_drift`), the nightly backtest (:mod:`monitoring.champion_backtest`)
and the scoring of stored forecasts on their actuals (:mod:`monitoring.forecast_scoring`).

These cross task boundaries (Airflow passes them between tasks) and land in MLflow as JSON, so they
are plain pydantic models, importable without pandas, Evidently or MLflow.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from core.outcomes import Outcome
from feature_drift.outcomes import DriftResult


class CheckState(StrEnum):
    """One daily drift check of the champion (:mod:`monitoring.champion_drift`)."""

    DRIFTED = "drifted"
    STEADY = "steady"
    UNKNOWN = "unknown"  # not enough data for a verdict
    NO_NEW_DATA = "no_new_data"  # the day's data was judged already: recorded, never counted


class MonitorOutcome(Outcome):
    check_date: str
    data_date: str
    champion_version: str
    state: CheckState
    drift: DriftResult | None  # None: no new data, so no verdict
    consecutive_drifted: int
    required_consecutive: int
    trigger: bool
    trigger_reason: str
    check_run_id: str
    streak_start: str = ""  # the first day of data of the drifted streak (the retraining's holdout starts there)
    seconds: float


class ModelBacktest(Outcome):
    """One registered model scored on the newest folds (:mod:`monitoring.champion_backtest`)."""

    role: str
    version: str
    mae: float
    rmse: float
    smape: float
    baseline_mae: float
    registered_mae: float
    ratio: float
    folds: int
    run_id: str


class RealizedAccuracy(Outcome):
    """How scored forecasts did against their actuals (:mod:`monitoring.forecast_scoring`), and seasonal
    naive on the same targets; per-step, per-entity and per-version maps are keyed by their text."""

    forecasts: int
    mae: float
    naive_mae: float | None = Field(description="Seasonal naive's MAE on the targets it could forecast.")
    mae_on_naive_targets: float | None = Field(description="The forecasts' MAE on those same targets.")
    mae_per_step: dict[str, float]
    naive_mae_per_step: dict[str, float]
    mae_per_entity: dict[str, float]
    mae_per_version: dict[str, float]


class IntervalAccuracy(Outcome):
    """How one level's bands did: the share of actuals inside (against ``level``), the mean width, and
    the interval (Winkler) score, width plus ``2 / (1 - level)`` times how far an actual fell outside
    (lower is better: it rewards narrow bands only while they hold the actuals); also per step."""

    level: float
    forecasts: int
    coverage: float
    mean_width: float
    interval_score: float
    coverage_per_step: dict[str, float]
    width_per_step: dict[str, float]


class ScoredForecasts(Outcome):
    """One day's scoring: how many forecasts got their actual, and the realized accuracy of the
    forecasts whose targets the day held, per source (batch, online)."""

    dataset: str
    data_date: date
    scored: int
    unscored_due: int = Field(description="Forecasts past their target time that have no actual (yet).")
    realized: dict[str, RealizedAccuracy]
    days_above_naive: int
    intervals: dict[str, list[IntervalAccuracy]] = Field(
        default_factory=dict, description="Per source, each level's bands on the day's targets (narrowest first)."
    )
    coverage_7d: dict[str, float] = Field(
        default_factory=dict,
        description="Per level (its text), the batch bands' coverage over the seven days up to the day.",
    )
