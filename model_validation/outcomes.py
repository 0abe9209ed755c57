"""What the gates and the monitoring jobs decide, as typed values.

These cross task boundaries (Airflow passes them between tasks) and land in MLflow as JSON, so they
are plain pydantic models, importable without pandas, Evidently or MLflow.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Outcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    def as_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class GateDecision(_Outcome):
    """The champion/challenger gate's decision on one version (:mod:`model_validation.champion`)."""

    passed: bool
    reason: str
    version: str
    challenger_mae: float
    baseline_mae: float  # the hardest baseline's (the lowest MAE)
    champion_version: str | None
    champion_mae: float | None
    min_improvement: float
    champion_bound: float | None
    holdout_rows: int
    holdout_start: str
    holdout_end: str
    challenger_mae_by_entity: dict[str, float] = Field(default_factory=dict)
    champion_mae_by_entity: dict[str, float] = Field(default_factory=dict)
    baseline_mae_by_entity: dict[str, float] = Field(default_factory=dict)
    champion_trained_on_holdout: bool = False
    baseline: str = "seasonal naive"  # which baseline baseline_mae is
    baseline_maes: dict[str, float] = Field(default_factory=dict)  # every baseline's
    # The challenger's bands on the holdout: realized coverage per level key ("80"); empty without bands.
    coverage: dict[str, float] = Field(default_factory=dict)
    coverage_tolerance: float | None = None  # None: coverage reported, not demanded


class DriftOutcome(StrEnum):
    """The drift gate's verdict (:mod:`model_validation.drift`)."""

    PASSED = "passed"
    BLOCKED = "blocked"
    FORCED = "forced"  # blocked, and overridden by the run (recorded with its reason)
    NOT_ENOUGH_DATA = "not_enough_data"

    @property
    def allows_promotion(self) -> bool:
        return self is not DriftOutcome.BLOCKED


class EntityDrift(_Outcome):
    """One entity's verdict; ``drift_share`` is None when its windows are too small for one."""

    drift_share: float | None
    drifted_features: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    report_path: str | None = None


class DriftResult(_Outcome):
    """The drift gate's result over every entity."""

    outcome: DriftOutcome
    drift_share: float | None  # the largest share over the entities with a verdict
    entities: dict[str, EntityDrift] = Field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    max_drift_share: float = 0.0
    reason: str = ""
    current_start: str = ""
    current_end: str = ""

    @property
    def drifted(self) -> bool:
        return self.drift_share is not None and self.drift_share > self.max_drift_share

    @property
    def report_paths(self) -> list[str]:
        return [e.report_path for e in self.entities.values() if e.report_path]

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "drifted": self.drifted}


class RunSummary(_Outcome):
    """What a retraining run did, in one line (:func:`model_validation.decision.summarize_run`)."""

    model: str
    version: str
    champion_now: str | None
    promoted: bool
    data_date: str
    family: str
    horizon: int | None
    challenger_mae: float
    baseline_mae: float
    champion_mae: float | None
    drift: DriftOutcome
    drift_share: float | None
    reason: str


class CheckState(StrEnum):
    """One daily drift check of the champion (:mod:`model_validation.drift_monitor`)."""

    DRIFTED = "drifted"
    STEADY = "steady"
    UNKNOWN = "unknown"  # not enough data for a verdict
    NO_NEW_DATA = "no_new_data"  # the day's data was judged already: recorded, never counted


class MonitorOutcome(_Outcome):
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


class ModelBacktest(_Outcome):
    """One registered model scored on the newest folds (:mod:`model_validation.backtest_champion`)."""

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


class RealizedAccuracy(_Outcome):
    """How scored forecasts did against their actuals (:mod:`model_validation.scoring`), and seasonal
    naive on the same targets; per-step, per-entity and per-version maps are keyed by their text."""

    forecasts: int
    mae: float
    naive_mae: float | None = Field(description="Seasonal naive's MAE on the targets it could forecast.")
    mae_on_naive_targets: float | None = Field(description="The forecasts' MAE on those same targets.")
    mae_per_step: dict[str, float]
    naive_mae_per_step: dict[str, float]
    mae_per_entity: dict[str, float]
    mae_per_version: dict[str, float]


class IntervalAccuracy(_Outcome):
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


class ScoredForecasts(_Outcome):
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
