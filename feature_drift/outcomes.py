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


# Entities with metrics and figures of their own: MLflow and Prometheus hold a few series per entity
# of a check, not a hundred thousand.
PER_ENTITY = 20


class DriftResult(Outcome):
    """The drift gate's result over every entity."""

    outcome: DriftOutcome
    drift_share: float | None  # the largest share over the entities with a verdict
    entities: dict[str, EntityDrift] = Field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    max_drift_share: float = 0.0
    # Drift counts when more than this share of the entities with a verdict drifted (0: any one).
    max_drifted_entities: float = 0.0
    reason: str = ""
    reference_start: str = ""
    reference_end: str = ""  # always before current_start: the two windows never share a row
    current_start: str = ""
    current_end: str = ""

    @property
    def judged(self) -> dict[str, EntityDrift]:
        """The entities with a verdict (enough rows in both windows)."""
        return {name: e for name, e in self.entities.items() if e.drift_share is not None}

    def ranked(self, limit: int = PER_ENTITY) -> list[str]:
        """The ``limit`` entities that get metrics and figures of their own: the most drifted of those
        with a verdict first, then those without one, while there is room (the counts cover them all,
        and ``as_dict`` every entity)."""
        verdicts = self.judged  # built once: a lookup per entity into a fresh copy walked them all each time
        judged = sorted(verdicts.items(), key=lambda item: -(item[1].drift_share or 0.0))
        unjudged = [name for name in self.entities if name not in verdicts]
        return ([name for name, _ in judged] + unjudged)[:limit]

    @property
    def drifted_entities(self) -> list[str]:
        """The entities whose drift share is above ``max_drift_share``, the most drifted first."""
        over = [(name, e.drift_share or 0.0) for name, e in self.judged.items()]
        return [name for name, share in sorted(over, key=lambda item: -item[1]) if share > self.max_drift_share]

    @property
    def drifted(self) -> bool:
        """Whether more than ``max_drifted_entities`` of the judged entities drifted."""
        judged = len(self.judged)
        return judged > 0 and len(self.drifted_entities) / judged > self.max_drifted_entities

    @property
    def report_paths(self) -> list[str]:
        return [e.report_path for e in self.entities.values() if e.report_path]

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "drifted": self.drifted}
