"""Many series on demand: each series the same however many are written and in whatever partitions,
the kinds of series real data has, and a table with its YAML that the platform ingests and validates
unchanged."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from harness import series


def test_a_series_is_the_same_whatever_was_drawn_with_it() -> None:
    few = pd.concat(series.frames(30, days=200, seed=4, partition=7), ignore_index=True)
    many = pd.concat(series.frames(90, days=200, seed=4, partition=50), ignore_index=True)
    pd.testing.assert_frame_equal(few, many[many["series"].isin(few["series"].unique())].reset_index(drop=True))
    other = pd.concat(series.frames(30, days=200, seed=5), ignore_index=True)
    assert not np.allclose(few["value"].to_numpy()[:200], other["value"].to_numpy()[:200]), "the seed matters"


@pytest.mark.parametrize("frequency", ["daily", "hourly"])
def test_the_series_have_the_shapes_of_real_data(frequency: series.Frequency) -> None:
    frame = pd.concat(series.frames(300, frequency, days=120 if frequency == "hourly" else 730, seed=1))
    grid = series.grid(frequency, 120 if frequency == "hourly" else 730)
    by_series = frame.groupby("series")["value"]
    assert frame["time"].isin(grid).all(), "every value on the grid"
    assert frame["time"].dt.tz is not None
    assert frame["time"].max() == grid[-1]
    assert (frame["value"] >= 0).all()
    assert frame["value"].notna().all()
    levels = by_series.mean()
    assert levels[levels > 0].max() / levels[levels > 0].min() > 1e3, "scales from units to many thousands"
    zeros = by_series.apply(lambda v: (v == 0).mean())
    assert 0.03 < (zeros > 0.5).mean() < 0.25, "some series intermittent: mostly zeros"
    starts = frame.groupby("series")["time"].min()
    late = starts > grid[0]
    assert 0.03 < late.mean() < 0.25, "some series start midway"
    assert (frame.groupby("series").size()[late] >= 4 * series.SPECS[frequency].seasons[0]).all()
    season = int(series.SPECS[frequency].seasons[0])
    smooth = [v.to_numpy() for _, v in by_series if (v > 0).all() and len(v) == len(grid)]
    seasonal = [np.corrcoef(np.diff(v)[season:], np.diff(v)[:-season])[0, 1] for v in smooth]
    assert np.mean(np.asarray(seasonal) > 0.3) > 0.2, "many series repeat their season"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_written_dataset_is_ingested_and_validated_by_the_platform_unchanged(fmt: str, tmp_path: Path) -> None:
    from data_pipeline.ingest import ingest, load_source
    from data_pipeline.validation import validate

    path = series.write(tmp_path / "data", 45, days=400, seed=2, fmt=fmt, partition=20)  # type: ignore[arg-type]
    dataset = DatasetConfig.from_yaml(path)
    assert (dataset.horizon, dataset.seasonal_period, dataset.seasonalities) == (14, 7, [7, 365])
    if fmt == "parquet":
        assert pq.ParquetFile(path.with_suffix(".parquet")).num_row_groups == 3, "one row group per partition"
    settings = Settings(home=tmp_path / "home", source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    raw = load_source(dataset, settings)
    expected = pd.concat(series.frames(45, days=400, seed=2))
    assert raw["series"].nunique() == 45
    assert len(raw) == len(expected)
    np.testing.assert_allclose(raw["value"].to_numpy(dtype=float), expected["value"].to_numpy(), rtol=1e-12)
    day = series.END
    assert ingest(dataset, day, settings).rows == len(expected)
    assert validate(dataset, day, settings).evaluated > 0
    assert dataset.daily.history_end == date(2024, 12, 31)
