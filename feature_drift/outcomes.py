"""What a drift comparison decides, as typed values: the gate and the daily check both return them.

These cross task boundaries (Airflow passes them between tasks) and land in MLflow as JSON, so they
are plain pydantic models, importable without pandas, Evidently or MLflow.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from core.outcomes import Outcome


class DriftOutcome(StrEnum):
    """The drift gate's verdict (:func:`feature_drift.measure.drift_gate`)."""

    PASSED = "passed"
    BLOCKED = "blocked"
    FORCED = "forced"  # blocked, and overridden by the run (recorded with its reason)
    NOT_ENOUGH_DATA = "not_enough_data"

    @property
    def allows_promotion(self) -> bool:
        return self is not DriftOutcome.BLOCKED


class EntityDrift(Outcome):
    """One entity's verdict; ``drift_share`` is None when its windows are too small for one."""

    drift_share: float | None
    drifted_features: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    report_path: str | None = None


class DriftResult(Outcome):
    """The drift gate's result over every entity."""

    outcome: DriftOutcome
    drift_share: float | None  # the largest share over the entities with a verdict
    entities: dict[str, EntityDrift] = Field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    max_drift_share: float = 0.0
    reason: str = ""
    reference_start: str = ""
    reference_end: str = ""  # always before current_start: the two windows never share a row
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
