"""The regime change ``make simulate SHIFT=...`` injects: one entity's target, from the shift's day on."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from simulation.source import Shift


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    stamps = pd.date_range("2024-01-01", periods=40 * 24, freq="h", tz="UTC")
    rng = np.random.default_rng(3)
    frame = pd.concat(
        [pd.DataFrame({"site": site, "ts": stamps, "y": 10.0 + rng.normal(0, 2.0, len(stamps))}) for site in "ab"],
        ignore_index=True,
    )
    return frame, pd.to_datetime(frame["ts"], utc=True)


@pytest.mark.parametrize(
    ("kind", "mean_moves", "spread"),
    [("level", 2.0, 1.0), ("scale", 0.0, 3.0), ("level_scale", 2.0, 3.0)],
)
def test_a_shift_changes_one_entity_from_its_day_on(kind: str, mean_moves: float, spread: float) -> None:
    frame, stamps = _frame()
    start = date(2024, 2, 1)
    rows = frame["site"] == "a"
    shifted = Shift(kind, start, "a", level=2.0, scale=3.0).apply(frame, stamps, rows, "y")
    after = rows & (stamps >= pd.Timestamp("2024-02-01", tz="UTC"))
    before = rows & (stamps < pd.Timestamp("2024-02-01", tz="UTC")) & (stamps >= pd.Timestamp("2024-01-04", tz="UTC"))
    mean, std = frame.loc[before, "y"].mean(), frame.loc[before, "y"].std()
    assert frame[~after].equals(shifted[~after]), "the other entity and the days before are untouched"
    expected = mean + 3.0 * (frame.loc[after, "y"] - mean) if "scale" in kind else frame.loc[after, "y"]
    expected = expected + 2.0 * std if "level" in kind else expected
    assert shifted.loc[after, "y"].to_numpy() == pytest.approx(expected.to_numpy())
    moved = (shifted.loc[after, "y"].mean() - frame.loc[after, "y"].mean()) / std
    assert moved == pytest.approx(mean_moves, abs=0.3)
    assert shifted.loc[after, "y"].std() / frame.loc[after, "y"].std() == pytest.approx(spread)


def test_no_shift_changes_nothing() -> None:
    frame, stamps = _frame()
    assert Shift().apply(frame, stamps, frame["site"] == "a", "y") is frame


def test_a_daily_cycle_is_added_from_the_shift_on() -> None:
    frame, stamps = _frame()
    rows = frame["site"] == "a"
    shifted = Shift("daily_cycle", date(2024, 2, 1), "a", level=2.0).apply(frame, stamps, rows, "y")
    after = rows & (stamps >= pd.Timestamp("2024-02-01", tz="UTC"))
    added = (shifted.loc[after, "y"] - frame.loc[after, "y"]).groupby(stamps[after].dt.hour).mean()
    std = frame.loc[rows & (stamps < pd.Timestamp("2024-02-01", tz="UTC")), "y"].tail(28 * 24).std()
    assert added[6] == pytest.approx(2.0 * std)
    assert added[18] == pytest.approx(-2.0 * std)
    assert frame[~after].equals(shifted[~after])


def test_the_drift_loop_is_timed_from_the_shift_and_judged_on_the_shifted_entity() -> None:
    """Days from the shift to the first drifted check, the trigger and the promotion; the post-shift
    MAEs are the shifted entity's (the other entity is reported beside it, not mixed in)."""
    from types import SimpleNamespace

    from simulation.report import Day, drift_loop

    def day(n: int, state: str, retrains: int = 0, promotions: int = 0, version: str = "1") -> Day:
        return Day(f"2024-02-{n:02d}", 48, 48, 48, 1.0, 1.0, 0.6, state, retrains, promotions, 0, version)

    days = [day(1, "steady"), day(2, "steady"), day(3, "drifted"), day(4, "drifted"), day(5, "drifted", 1, 1, "2")]
    asked: list[tuple[str, str, date]] = []

    def maes(promoted: str, replaced: str, since: date) -> dict[str, tuple[float, float, int]]:
        asked.append((promoted, replaced, since))
        return {"a": (1.5, 1.2, 96), "b": (2.0, 3.0, 96)}

    simulation = SimpleNamespace(source=SimpleNamespace(shifted_entity="b"), post_promotion_maes=maes)
    loop = drift_loop(simulation, days, Shift("daily_cycle", date(2024, 2, 2), "b"))  # type: ignore[arg-type]
    assert asked == [("2", "1", date(2024, 2, 5))]
    assert (loop["days_to_first_drifted"], loop["trigger_day"], loop["days_from_trigger_to_promotion"]) == (
        1,
        "2024-02-05",
        0,
    )
    assert (loop["post_shift_champion_mae"], loop["post_shift_old_champion_mae"], loop["post_shift_targets"]) == (
        2.0,
        3.0,
        96,
    )
    assert loop["post_promotion_by_entity"]["a"] == {"champion_mae": 1.5, "old_champion_mae": 1.2, "targets": 96}
