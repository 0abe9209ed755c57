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
