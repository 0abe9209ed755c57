"""M4's training values as the datasets ``configs/datasets/m4_{hourly,weekly}.yaml`` describe: long
rows on the config's own grid, every series ending where its test values begin."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT


@pytest.mark.parametrize(("frequency", "series", "rows"), [("hourly", 414, 353_500), ("weekly", 359, 366_912)])
def test_the_export_is_the_dataset_its_config_describes(tmp_path: Path, frequency: str, series: int, rows: int) -> None:
    from benchmarks.m4.export import export

    dataset = DatasetConfig.from_yaml(PROJECT_ROOT / "configs" / "datasets" / f"m4_{frequency}.yaml")
    assert dataset.source.uri == f"../../data/m4/m4_{frequency}.csv"
    frame = pd.read_csv(export(frequency, tmp_path))
    assert list(frame.columns) == dataset.raw_columns
    assert len(frame) == rows
    assert frame[dataset.entity_column].nunique() == series
    stamps = pd.DatetimeIndex(pd.to_datetime(frame[dataset.timestamp_column], format=dataset.source.timestamp_format))
    assert dataset.frequency.on_grid(stamps).all()
    newest = frame.assign(t=stamps).groupby(dataset.entity_column)["t"].max()
    assert (newest == pd.Timestamp("2024-01-01")).all(), "every series ends where its test values begin"
    assert str(dataset.daily.history_end) == "2024-01-01"
    low, high = dataset.quality.value_ranges[dataset.target]
    assert frame[dataset.target].between(low, high).all()
