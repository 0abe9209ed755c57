"""A training set written a part of series at a time: the same rows, holdout and histories as the
whole table split in memory, one row group per part (what bounds the writer's memory)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.objects import read_parquet
from core.settings import Settings
from feature_store.training_set import get_training_set, holdout_location, split_holdout, write_training_set
from harness import series
from tests.utils.platform import run_data_chain

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_training_set_written_in_parts_of_series_is_the_whole_table_split(tmp_path: Path) -> None:
    config = series.write(tmp_path / "data", 7, days=200, seed=3)
    dataset = DatasetConfig.from_yaml(config)
    settings = Settings(home=tmp_path / "home", dataset_config=config, source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    run_data_chain(settings, dataset, series.END)

    whole = get_training_set(settings, dataset, series.END)
    entity = dataset.entity_column
    assert whole[entity].nunique() == 7
    order = whole.sort_values([entity, EVENT_TIMESTAMP], kind="stable").index
    assert (order == whole.index).all(), "sorted by series, then time: each part of series is a slice"
    training, holdout = split_holdout(whole, dataset)

    location = str(tmp_path / "runs" / "training.parquet")
    written = write_training_set(settings, dataset, series.END, location, per_part=2)
    assert pq.ParquetFile(location).num_row_groups == 4, "seven series, two a part"
    pd.testing.assert_frame_equal(read_parquet(location, settings), training)
    pd.testing.assert_frame_equal(read_parquet(holdout_location(location), settings), holdout)
    assert (written.rows, written.holdout_rows, written.labelled_rows) == (len(training), len(holdout), len(whole))
