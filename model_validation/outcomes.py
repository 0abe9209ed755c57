"""What the promotion gates decide, as typed values (the drift verdict is :mod:`feature_drift.outcomes`).

These cross task boundaries (Airflow passes them between tasks) and land in MLflow as JSON, so they
are plain pydantic models, importable without pandas, Evidently or MLflow.
"""

from __future__ import annotations

from pydantic import Field

from core.outcomes import Outcome
from feature_drift.outcomes import DriftOutcome


class GateDecision(Outcome):
    """The champion/challenger gate's decision on one version (:mod:`model_validation.champion`)."""

    passed: bool
    reason: str
    version: str
    challenger_mae: float
    baseline_mae: float  # the MAE of the hardest baseline (the one of lowest MASE)
    champion_version: str | None
    champion_mae: float | None
    min_improvement: float
    champion_bound: float | None  # on MASE
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
    # What the gate decides on: each series' MAE over its own scale (MASE), averaged over series, so
    # that small series count as much as large ones; the bound is the champion's MASE times the margin.
    challenger_mase: float = 0.0
    baseline_mase: float = 0.0  # the hardest baseline's (the lowest MASE)
    baseline_mases: dict[str, float] = Field(default_factory=dict)
    champion_mase: float | None = None
    challenger_mase_by_entity: dict[str, float] = Field(default_factory=dict)
    series_worse_than_seasonal_naive: float = 0.0  # share of the series


class RunSummary(Outcome):
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
