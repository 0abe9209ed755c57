"""The frequency grid: fixed and calendar steps, checked against pandas' own calendar (its offsets
and ``date_range``), which the platform does not use for stepping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.frequency import Frequency

# Each text as a config names it -> the pandas alias whose date_range is the same grid.
GRIDS = {
    "PT1H": "h",
    "PT15M": "15min",
    "P1D": "D",
    "P1W": "W-MON",
    "W-SUN": "W-SUN",
    "P1M": "MS",
    "ME": "ME",
    "P3M": "QS-JAN",
    "QS-FEB": "QS-FEB",
    "QE": "QE-DEC",
    "QE-NOV": "QE-NOV",
    "P1Y": "YS-JAN",
    "YE": "YE-DEC",
    "YS-JUL": "YS-JUL",
}


@pytest.mark.parametrize(("text", "alias"), GRIDS.items())
def test_each_grid_is_the_calendar_pandas_draws(text: str, alias: str) -> None:
    frequency = Frequency.parse(text)
    stamps = pd.date_range("1987-11-03", "2025-02-27", freq=alias, tz="UTC")[-400:]
    ordinals = frequency.ordinals(stamps)
    assert np.array_equal(np.diff(ordinals), np.ones(len(stamps) - 1)), "consecutive grid points, no skip"
    assert frequency.stamps(ordinals).equals(stamps)
    assert frequency.on_grid(stamps).all()
    assert frequency.range(stamps[0], stamps[-1]).equals(stamps)
    assert frequency.steps_between(stamps[3], stamps[-1]) == len(stamps) - 4
    assert frequency.shift(stamps[5], 7) == stamps[12]
    assert frequency.shift(stamps[12], -7) == stamps[5]
    assert frequency.ahead(stamps[0].to_pydatetime(), 3) == list(stamps[1:4].to_pydatetime())
    assert frequency.shift_each(stamps[:3], [2, 0, -1]).equals(pd.DatetimeIndex([stamps[2], stamps[1], stamps[1]]))
    assert Frequency.parse(str(frequency)) == frequency, "its text parses back to the same grid"


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_the_grid_reads_timestamps_of_any_resolution(unit: str) -> None:
    stamps = pd.date_range("2023-01-01", periods=5, freq="MS", tz="UTC").as_unit(unit)
    for text in ("P1M", "P1D", "PT1H"):
        frequency = Frequency.parse(text)
        assert frequency.on_grid(stamps).all()
        assert frequency.offgrid_seconds(stamps).tolist() == [0.0] * 5
    months_since_year_0 = list(range(2023 * 12, 2023 * 12 + 5))
    assert Frequency.parse("P1M").ordinals(stamps).tolist() == months_since_year_0


def test_a_month_is_not_thirty_days() -> None:
    month, thirty = Frequency.parse("P1M"), Frequency.parse("P30D")
    firsts = pd.date_range("2023-01-01", periods=14, freq="MS", tz="UTC")
    assert month.on_grid(firsts).all()
    assert not thirty.on_grid(firsts).all()
    assert not month.is_fixed
    assert thirty.is_fixed
    assert [Frequency.parse(t).months for t in ("P1M", "QE", "P1Y", "P1D")] == [1, 3, 12, None]
    assert month.shortest == timedelta(days=28)
    assert month.steps_in(timedelta(days=365)) == 11  # by the mean month (30.44 days)
    assert month.whole_steps(timedelta(days=7)) is None
    with pytest.raises(ValueError, match="calendar frequency"):
        _ = month.fixed


def test_off_the_grid_is_measured_from_the_grid_point_before() -> None:
    month = Frequency.parse("P1M")
    stamps = pd.DatetimeIndex(["2024-03-01", "2024-03-15", "2024-03-01 06:00", "2024-02-29"], tz="UTC")
    assert month.on_grid(stamps).tolist() == [True, False, False, False]
    assert month.offgrid_seconds(stamps).tolist() == [0.0, 14 * 86400.0, 6 * 3600.0, 28 * 86400.0]
    with pytest.raises(ValueError, match="off the P1M grid"):
        month.ordinals(stamps)
    # A calendar step counts from the grid point at or before the stamp; a fixed step adds its length.
    assert month.shift(pd.Timestamp("2024-01-31"), 1) == pd.Timestamp("2024-02-01")
    assert month.shift(pd.Timestamp("2024-01-31", tz="UTC"), 0) == pd.Timestamp("2024-01-01", tz="UTC")
    hour = Frequency.parse("PT1H")
    assert hour.shift(pd.Timestamp("2024-01-01 00:30"), 2) == pd.Timestamp("2024-01-01 02:30")
    month_end = Frequency.parse("ME")
    assert month_end.on_grid(pd.DatetimeIndex(["2024-02-28", "2024-02-29", "2023-02-28"], tz="UTC")).tolist() == [
        False,
        True,
        True,
    ]


@pytest.mark.parametrize(
    ("text", "same"),
    [("h", "PT1H"), ("D", "P1D"), ("P7D", "P1W"), ("MS", "P1M"), ("QS", "P3M"), ("YS", "P1Y"), ("P12M", "P1Y")],
)
def test_aliases_name_the_same_grid(text: str, same: str) -> None:
    assert Frequency.parse(text) == Frequency.parse(same)
    assert hash(Frequency.parse(text)) == hash(Frequency.parse(same))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("monthly", "neither an ISO 8601 duration nor a pandas offset alias"),
        ("W-XYZ", "unknown weekday"),
        ("QS-XYZ", "unknown month"),
        ("MS-JAN", "takes no starting month"),
        ("BMS", "use P1M/MS/ME"),
        ("", "ISO 8601 duration"),
        ("PT0S", "must be positive"),
    ],
)
def test_what_is_not_a_frequency_says_what_is(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Frequency.parse(text)


def test_a_dataset_config_reads_and_writes_a_calendar_frequency(tmp_path: Path) -> None:
    from core.dataset import DatasetConfig
    from tests.utils.data import write_monthly_dataset

    dataset = DatasetConfig.from_yaml(write_monthly_dataset(tmp_path))
    assert dataset.frequency == Frequency.parse("P1M")
    assert dataset.target_lags == list(range(dataset.seasonal_period)), "no week in a month"
    assert dataset.seasonalities == [12]
    assert dataset.model_dump(mode="json")["frequency"] == "P1M"
    published = tmp_path / "published.yaml"
    published.write_text(dataset.to_yaml())
    assert DatasetConfig.from_yaml(published) == dataset
