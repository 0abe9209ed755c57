"""What the drift gate and monitor record per entity stays bounded: the most drifted entities get
metrics and figures of their own, every entity is counted."""

from __future__ import annotations

from feature_drift.outcomes import PER_ENTITY, DriftOutcome, DriftResult, EntityDrift


def result(shares: dict[str, float | None]) -> DriftResult:
    entities = {name: EntityDrift(drift_share=share) for name, share in shares.items()}
    return DriftResult(
        outcome=DriftOutcome.PASSED, drift_share=None, entities=entities, max_drift_share=0.5, max_drifted_entities=0.1
    )


def test_of_many_series_the_most_drifted_get_figures_of_their_own() -> None:
    shares = {f"s{n}": 0.9 - n / 100 if n < 9 else 0.3 - n / 1000 for n in range(100)}  # the larger n, the less
    many = result({"quiet": None, **dict(reversed(shares.items()))})
    assert many.ranked() == [f"s{n}" for n in range(PER_ENTITY)]
    assert many.drifted_entities == [f"s{n}" for n in range(9)]
    assert not many.drifted, "9 of 100 series: under the tenth that may drift"


def test_a_few_series_are_all_shown_those_without_a_verdict_last() -> None:
    few = result({"a": 0.2, "b": None, "c": 0.7})
    assert few.ranked() == ["c", "a", "b"]
    assert few.drifted_entities == ["c"]
    assert few.drifted, "one of two judged entities"
