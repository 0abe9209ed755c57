"""Each row's history: the target's values up to the row's own time, on the grid, never later."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP, history_name, label_names, lag_name
from core.dataset import DatasetConfig
from core.history import target_series, with_history
from tests.utils.data import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetConfig:
    config = DatasetConfig.from_yaml(write_dataset(tmp_path_factory.mktemp("history")))
    return config.model_copy(
        update={"feature_engineering": config.feature_engineering.model_copy(update={"history": 5})}
    )


def rows(dataset: DatasetConfig, values: list[float], hours: list[int]) -> pd.DataFrame:
    """Feature rows of one entity at the given hours, lag 0 the value there and labels the next ones
    (from ``values``, NaN past its end)."""
    start = pd.Timestamp("2024-01-01", tz="UTC")
    series = dict(enumerate(values))
    frame = pd.DataFrame(
        {
            dataset.entity_column: "a",
            EVENT_TIMESTAMP: [start + pd.Timedelta(hours=h) for h in hours],
            lag_name(dataset.target, 0): [series[h] for h in hours],
        }
    )
    for step, label in enumerate(label_names(dataset), start=1):
        frame[label] = [series.get(h + step, np.nan) for h in hours]
    return frame


def test_a_window_ends_at_its_rows_time_and_takes_no_later_label(dataset: DatasetConfig) -> None:
    values = [float(v) for v in range(20)]
    source = rows(dataset, values, list(range(12)))  # labels reach hour 17
    held = with_history(source.iloc[[0, 3, 11]], source, dataset)
    windows = np.stack(held[history_name(dataset)].to_list())
    np.testing.assert_array_equal(windows[0], [np.nan] * 4 + [0.0])  # nothing before the first value
    np.testing.assert_array_equal(windows[1], [np.nan, 0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(windows[2], [7.0, 8.0, 9.0, 10.0, 11.0])  # not 12..17, the labels
    assert held.index.tolist() == [0, 3, 11]


def test_the_series_runs_on_the_grid_to_the_newest_label_and_a_gap_stays_a_gap(dataset: DatasetConfig) -> None:
    values = [float(v) for v in range(30)]
    source = rows(dataset, values, [0, 1, 2, 20, 21])  # hours 3..19 never observed, some labelled
    grid = target_series(source, dataset)["a"]
    assert grid.end == grid.start + pd.Timedelta(hours=21 + dataset.horizon)
    assert grid.values[2] == 2.0
    assert grid.values[8] == 8.0
    assert np.isnan(grid.values[9:20]).all(), "no row tells hours 9..19"
    np.testing.assert_array_equal(grid.values[20:], values[20 : 22 + dataset.horizon])


def test_the_observed_value_wins_over_an_earlier_rows_label(dataset: DatasetConfig) -> None:
    source = rows(dataset, [float(v) for v in range(20)], [0, 1, 2])
    source.loc[0, "y_2"] = -1.0  # a label that disagrees with hour 2's own lag 0
    assert target_series(source, dataset)["a"].values[2] == 2.0


def test_rows_without_the_target_are_refused(dataset: DatasetConfig) -> None:
    source = rows(dataset, [1.0, 2.0, 3.0], [0]).drop(columns=[lag_name(dataset.target, 0), *label_names(dataset)])
    with pytest.raises(ValueError, match="neither"):
        target_series(source, dataset)
    other = rows(dataset, [1.0, 2.0], [0]).assign(**{dataset.entity_column: "b"})
    with pytest.raises(KeyError, match="'a'"):
        with_history(rows(dataset, [1.0, 2.0], [0]), other, dataset)


def test_the_default_history_covers_eight_seasons_four_horizons_and_two_weeks_of_hours(dataset: DatasetConfig) -> None:
    default = dataset.model_copy(
        update={"feature_engineering": dataset.feature_engineering.model_copy(update={"history": None})}
    )
    assert default.history_length == 336
    assert default.model_copy(update={"seasonal_period": 52}).history_length == 416


def test_the_seasons_of_a_multi_season_model_add_the_week_where_it_is_longer(dataset: DatasetConfig) -> None:
    from datetime import timedelta

    from core.frequency import Frequency

    def seasons(step: timedelta, period: int, configured: list[int] | None = None) -> list[int]:
        update = {"frequency": Frequency.parse(step), "seasonal_period": period, "seasonal_periods": configured}
        return dataset.model_copy(update=update).seasonalities

    assert seasons(timedelta(hours=1), 24) == [24, 168]
    assert seasons(timedelta(minutes=15), 96) == [96, 672]
    assert seasons(timedelta(days=1), 7) == [7], "a week of days is the season itself"
    assert seasons(timedelta(days=30), 12) == [12], "no whole number of steps in a week"
    assert seasons(timedelta(hours=1), 24, [168, 24, 24]) == [24, 168], "as configured, shortest first"


@pytest.mark.parametrize("frequency", ["PT1H", "P1M"])
@pytest.mark.parametrize("newest_steps", [None, 10])
def test_the_histories_of_many_series_are_each_its_own(
    dataset: DatasetConfig, frequency: str, newest_steps: int | None
) -> None:
    """Series of different starts, gaps and rows in any order, on a fixed and a calendar grid: each
    row's history is its own series' last values on the grid, NaN before it began or in a gap; with
    ``newest``, only the rows within it of their series' newest time; in the order of the entities,
    each one's rows in their order."""
    from core.frequency import Frequency
    from core.history import GridSeries, history_frame

    dataset = dataset.model_copy(update={"frequency": Frequency.parse(frequency)})
    newest = None if newest_steps is None else dataset.frequency.nominal * newest_steps
    rng = np.random.default_rng(5)
    frames = []
    for series in range(5):
        start = dataset.frequency.shift(pd.Timestamp("2020-01-01", tz="UTC"), int(rng.integers(0, 9)))
        stamps = dataset.frequency.shift_each(pd.DatetimeIndex([start] * 30), np.arange(30))
        frame = pd.DataFrame({"site": f"s{series}", "ts": stamps, "temp": rng.normal(0, 1, 30)})
        frames.append(frame[rng.random(30) > 0.2])
    raw = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=6)
    raw["ts"] = raw["ts"].dt.as_unit("s")  # times in another unit than nanoseconds, as a file may give

    built = history_frame(raw, dataset, "ts", newest)
    expected = []
    for name, own in raw.groupby("site", sort=True):  # a grid per series, its rows in their order
        stamps = pd.DatetimeIndex(own["ts"])
        values = np.full(dataset.frequency.steps_between(stamps.min(), stamps.max()) + 1, np.nan)
        grid = GridSeries(start=stamps.min(), frequency=dataset.frequency, values=values)
        values[grid.positions(stamps)] = own["temp"].to_numpy()
        wanted = stamps if newest is None else stamps[stamps > stamps.max() - newest]
        expected += [(name, stamp, window) for stamp, window in zip(wanted, grid.windows(wanted, 5), strict=True)]
    assert list(zip(built["site"], built[EVENT_TIMESTAMP], strict=True)) == [(n, t) for n, t, _ in expected]
    for window, (_, _, own) in zip(built[history_name(dataset)], expected, strict=True):
        np.testing.assert_array_equal(window, own)
    assert len(built) == len(raw) if newest is None else 5 <= len(built) < len(raw)


def test_many_entities_in_one_frame_get_the_series_and_windows_each_gets_alone(dataset: DatasetConfig) -> None:
    """Rows of several entities interleaved, with their labels, gaps and missing values: each entity's
    series, and each row's history window, are the ones its rows alone give."""
    rng = np.random.default_rng(8)
    frames = []
    for entity in "abcd":
        hours = sorted(rng.choice(60, size=40, replace=False) + int(rng.integers(0, 20)))
        values = list(rng.normal(0, 1, max(hours) + 10))
        frame = rows(dataset, values, hours).assign(**{dataset.entity_column: entity})
        frame.loc[rng.random(len(frame)) < 0.1, lag_name(dataset.target, 0)] = np.nan
        frames.append(frame)
    mixed = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=9)

    together = target_series(mixed, dataset)
    windows = with_history(mixed, mixed, dataset)[history_name(dataset)]
    assert sorted(together) == list("abcd")
    for entity in "abcd":
        own = mixed[mixed[dataset.entity_column] == entity]
        alone = target_series(own, dataset)[entity]
        assert together[entity].start == alone.start
        np.testing.assert_array_equal(together[entity].values, alone.values)
        alone_windows = with_history(own, own, dataset)[history_name(dataset)]
        for got, expected in zip(windows[own.index], alone_windows, strict=True):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(KeyError, match="'e'"):
        with_history(mixed.assign(**{dataset.entity_column: "e"}), mixed, dataset)
    assert target_series(mixed.iloc[0:0], dataset) == {}
