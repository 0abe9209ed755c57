"""Scoring stored forecasts against actuals, on a case whose errors are worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.files import write_atomically
from core.partitions import validated_path
from core.settings import Settings
from forecast_store import store
from monitoring.forecast_scoring import days_above_naive, naive_lag, score_day, score_forecasts
from tests.utils.data import synthetic_config

DAY = date(2024, 3, 31)
MIDNIGHT = datetime(2024, 3, 31, tzinfo=UTC)


@pytest.fixture
def case(tmp_path: Path) -> tuple[Settings, DatasetConfig]:
    """Hourly actuals y = hours since the day before's midnight (0..47), season 2 hours, horizon 3."""
    config = synthetic_config("series.csv") | {"horizon": 3, "seasonal_period": 2}
    dataset = DatasetConfig.model_validate(config)
    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    write_actuals(settings, dataset, {})
    return settings, dataset


def write_actuals(settings: Settings, dataset: DatasetConfig, changes: dict[int, float]) -> None:
    stamps = pd.date_range(MIDNIGHT - timedelta(days=1), periods=48, freq="h")
    target = [float(changes.get(i, i)) for i in range(48)]
    frame = pd.DataFrame({"site": "a", "ts": stamps, "load": 1.0, "aux": 1.0, "temp": target})
    write_atomically(frame, Path(validated_path(settings, dataset, DAY)))


def issue(settings: Settings, day: date, issue_hour: int, values: list[float], version: str = "1") -> None:
    """Store a batch forecast of entity ``a`` issued at ``issue_hour`` (hours since the day before's midnight)."""
    issued = MIDNIGHT - timedelta(days=1) + timedelta(hours=issue_hour)
    rows = [
        store.ForecastRow("synthetic", "a", day, issued, h, issued + timedelta(hours=h), v, "m", version)
        for h, v in enumerate(values, start=1)
    ]
    store.upgrade(settings)
    store.replace_day(settings, "synthetic", day, rows)


def test_naive_looks_back_the_fewest_whole_seasons(case: tuple[Settings, DatasetConfig]) -> None:
    _, dataset = case
    assert [naive_lag(dataset, h) for h in (1, 2, 3)] == [2, 2, 4]


def test_errors_and_naive_errors_match_the_hand_computed_case(case: tuple[Settings, DatasetConfig]) -> None:
    settings, dataset = case
    # Issued at hour 22 of the day before: targets at hours 23 (the day before), 24 and 25 (the day).
    issue(settings, DAY - timedelta(days=1), 22, [25.0, 22.0, 26.0])
    outcome = score_day(settings, dataset, DAY, "run-1")

    # actual y(t) = t. errors: 25-23=2, 22-24=-2, 26-25=1. naive: y(23-2)=21, y(24-2)=22, y(25-4)=21
    # -> naive errors -2, -2, -4.
    scored = sorted(store.scored(settings, "synthetic"), key=lambda r: r["step"])
    assert [(r["step"], r["actual"], r["error"], r["naive_value"], r["naive_error"]) for r in scored] == [
        (1, 23.0, 2.0, 21.0, -2.0),
        (2, 24.0, -2.0, 22.0, -2.0),
        (3, 25.0, 1.0, 21.0, -4.0),
    ]
    assert [r["target_date"] for r in scored] == [DAY - timedelta(days=1), DAY, DAY]
    assert (outcome.scored, outcome.unscored_due) == (3, 0)
    # The day's own targets are steps 2 and 3: MAE (2+1)/2 = 1.5 against naive's (2+4)/2 = 3.
    day = outcome.realized["batch"]
    assert (day.forecasts, day.mae, day.naive_mae) == (2, 1.5, 3.0)
    assert day.mae_per_step == {"2": 2.0, "3": 1.0}
    assert day.naive_mae_per_step == {"2": 2.0, "3": 4.0}
    assert (day.mae_per_entity, day.mae_per_version) == ({"a": 1.5}, {"1": 1.5})
    assert outcome.days_above_naive == 0


def test_a_rerun_scores_each_forecast_once_and_a_corrected_day_replaces_its_scores(
    case: tuple[Settings, DatasetConfig],
) -> None:
    settings, dataset = case
    issue(settings, DAY - timedelta(days=1), 22, [25.0, 22.0, 26.0])
    score_day(settings, dataset, DAY)
    again = score_day(settings, dataset, DAY)
    assert again.scored == 2, "the day's own targets are scored again, the caught-up one is not"
    assert len(store.scored(settings, "synthetic")) == 3

    write_actuals(settings, dataset, {24: 30.0})  # the day's source corrected: hour 24 was 30, not 24
    score_day(settings, dataset, DAY)
    scored = {r["step"]: (r["actual"], r["error"]) for r in store.scored(settings, "synthetic")}
    assert scored == {1: (23.0, 2.0), 2: (30.0, -8.0), 3: (25.0, 1.0)}


def test_a_forecast_issued_again_loses_its_score_and_is_scored_by_the_next_run(
    case: tuple[Settings, DatasetConfig],
) -> None:
    settings, dataset = case
    issue(settings, DAY - timedelta(days=1), 22, [25.0, 22.0, 26.0])
    score_day(settings, dataset, DAY)
    issue(settings, DAY - timedelta(days=1), 22, [23.0, 24.0, 25.0])  # the day re-run: new rows, old scores gone
    assert store.scored(settings, "synthetic") == []
    assert score_day(settings, dataset, DAY).scored == 3
    assert [r["error"] for r in sorted(store.scored(settings, "synthetic"), key=lambda r: r["step"])] == [0, 0, 0]


def test_a_target_without_an_actual_stays_unscored(case: tuple[Settings, DatasetConfig]) -> None:
    settings, dataset = case
    write_actuals(settings, dataset, {25: float("nan")})  # hour 25 missing
    issue(settings, DAY - timedelta(days=1), 22, [25.0, 22.0, 26.0])
    outcome = score_day(settings, dataset, DAY)
    assert (outcome.scored, outcome.unscored_due) == (2, 1)
    # Targets past the day are not due: a forecast issued at hour 46 has only step 1 due.
    issue(settings, DAY, 46, [1.0, 2.0, 3.0])
    assert score_day(settings, dataset, DAY).unscored_due == 1


def test_the_streak_counts_consecutive_days_above_naive() -> None:
    # Each day: (the batch forecasts' MAE, naive's) on the targets naive could forecast.
    daily = {DAY: (3.0, 1.0), DAY - timedelta(days=1): (3.0, 2.0), DAY - timedelta(days=2): (1.0, 2.0)}
    daily[DAY - timedelta(days=3)] = (5.0, 1.0)
    assert days_above_naive(daily, DAY) == 2
    assert days_above_naive(daily, DAY - timedelta(days=2)) == 0
    del daily[DAY - timedelta(days=1)]
    assert days_above_naive(daily, DAY) == 1, "a gap ends it"


def test_bands_are_scored_for_coverage_width_and_interval_score_by_hand(case: tuple[Settings, DatasetConfig]) -> None:
    settings, dataset = case
    issued = MIDNIGHT - timedelta(hours=2)  # hour 22 of the day before: targets 23, 24 and 25
    rows = [
        store.ForecastRow(
            "synthetic", "a", DAY - timedelta(days=1), issued, h, issued + timedelta(hours=h), v, "m", "1",
            intervals=((0.8, v - 1.5, v + 1.5), (0.95, v - 3.0, v + 3.0)),
        )
        for h, v in enumerate([25.0, 22.0, 26.0], start=1)
    ]  # fmt: skip
    store.upgrade(settings)
    store.replace_day(settings, "synthetic", DAY - timedelta(days=1), rows)
    outcome = score_day(settings, dataset, DAY)

    # The day's targets: step 2 (actual 24, 80 % band [20.5, 23.5]: missed by 0.5) and step 3 (actual
    # 25, [24.5, 27.5]: inside). Interval score at 80 %: width 3 plus 2 / 0.2 x 0.5 = 8, and 3.
    eighty, ninety_five = outcome.intervals["batch"]
    assert (eighty.level, eighty.forecasts, eighty.coverage, eighty.mean_width) == (0.8, 2, 0.5, 3.0)
    assert eighty.interval_score == pytest.approx(5.5)
    assert eighty.coverage_per_step == {"2": 0.0, "3": 1.0}
    assert (ninety_five.coverage, ninety_five.mean_width, ninety_five.interval_score) == (1.0, 6.0, 6.0)
    # Over the week: step 1 too (actual 23 below [23.5, 26.5]): one of three inside at 80 %.
    assert outcome.coverage_7d == pytest.approx({"80": 1 / 3, "95": 1.0})


def test_scoring_a_part_of_entities_at_a_time_gives_the_scores_of_one_pass(
    case: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    """Three entities' forecasts (one without actuals at some targets), scored an entity a part and all
    in one part, each in a table of its own: the same scores."""
    from forecast_store.schema import BATCH

    settings, dataset = case
    stamps = pd.date_range(MIDNIGHT - timedelta(days=1), periods=48, freq="h")
    frames = [
        pd.DataFrame({"site": site, "ts": stamps, "load": 1.0, "aux": 1.0, "temp": [float(i * k) for i in range(48)]})
        for k, site in enumerate(["a", "b", "c"], start=1)
    ]
    frames[1].loc[25:30, "temp"] = float("nan")
    write_atomically(pd.concat(frames, ignore_index=True), Path(validated_path(settings, dataset, DAY)))
    issued = MIDNIGHT - timedelta(hours=2)
    rows = [
        store.ForecastRow("synthetic", site, DAY - timedelta(days=1), issued, h, issued + timedelta(hours=h),
                          10.0 * h, "m", "1", source=BATCH)
        for site in ("a", "b", "c") for h in (1, 2, 3)
    ]  # fmt: skip
    scored = {}
    for per_part in (1, 500):
        own = settings.model_copy(update={"forecast_db": f"sqlite:///{tmp_path / f'{per_part}.db'}"})
        store.upgrade(own)
        store.replace_day(own, "synthetic", DAY - timedelta(days=1), rows)
        assert score_forecasts(own, dataset, DAY, per_part=per_part) == 8  # b's hour 25 has no actual
        scored[per_part] = store.scored(own, "synthetic")
    assert scored[1] == scored[500]
    assert {r["entity_id"] for r in scored[1]} == {"a", "b", "c"}
