"""A global model's training rows past ``training.max_rows``: a sample that keeps the backtest's test
rows and every series, the same whatever the parts it is read in."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP, label_names
from core.dataset import DatasetConfig
from core.settings import Settings
from harness import series
from model_training import rows as training
from model_training.backtest import make_folds


def _training_set(tmp_path: Path, count: int = 30, days: int = 200) -> tuple[DatasetConfig, str, pd.DataFrame]:
    """A training set's layout (entity, time, a feature, the labels), sorted by series then time and
    written in small row groups, with its dataset."""
    dataset = DatasetConfig.from_yaml(series.write(tmp_path / "d", count, days=days, partition=count))
    rng = np.random.default_rng(5)
    stamps = pd.date_range(end=pd.Timestamp(series.END, tz="UTC"), periods=days, freq="D")
    names = sorted(f"s{i}" for i in range(count))
    frame = pd.DataFrame(
        {
            "series": np.repeat(names, days),
            EVENT_TIMESTAMP: np.tile(stamps, count),
            "lag_1": rng.normal(size=count * days),
            **{label: rng.normal(size=count * days) for label in label_names(dataset)},
        }
    )
    location = str(tmp_path / "training_set.parquet")
    frame.to_parquet(location, index=False, row_group_size=500)
    return dataset, location, frame


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]


def test_a_global_model_past_the_budget_reads_a_sample_of_every_series_with_every_test_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, location, frame = _training_set(tmp_path)
    budget = 2000
    bounded = dataset.model_copy(update={"training": dataset.training.model_copy(update={"max_rows": budget})})
    sample = training.training_rows(location, bounded, "lightgbm", _settings(tmp_path))

    assert len(sample) < len(frame) / 2
    assert budget * 0.8 < len(sample) < budget * 1.2  # a hash's share of 6,000 rows, not an exact count
    cutoff = min(fold.cutoff for fold in make_folds(frame[EVENT_TIMESTAMP], dataset))
    tested = frame[frame[EVENT_TIMESTAMP] > cutoff]
    kept_tests = sample[sample[EVENT_TIMESTAMP] > cutoff]
    pd.testing.assert_frame_equal(kept_tests.reset_index(drop=True), tested.reset_index(drop=True))
    older = sample[sample[EVENT_TIMESTAMP] <= cutoff]
    assert set(older["series"]) == set(frame["series"])  # every series keeps some of its older rows
    assert older.groupby("series").size().min() > 0.5 * len(older) / frame["series"].nunique()
    assert sample.equals(sample.sort_values(["series", EVENT_TIMESTAMP]))  # in the file's order

    # The same rows whatever the parts they are read in, and in the next run.
    monkeypatch.setattr(training, "SERIES_PER_PART", 7)
    pd.testing.assert_frame_equal(training.training_rows(location, bounded, "lightgbm", _settings(tmp_path)), sample)

    # A model per series forecasts from each row's history: it reads every row.
    pd.testing.assert_frame_equal(training.training_rows(location, bounded, "auto_ets", _settings(tmp_path)), frame)
    pd.testing.assert_frame_equal(training.training_rows(location, bounded, "selection", _settings(tmp_path)), frame)


def test_within_the_budget_or_without_one_a_model_reads_every_row(tmp_path: Path) -> None:
    dataset, location, frame = _training_set(tmp_path, count=5, days=100)
    assert dataset.training.max_rows is not None
    assert dataset.training.max_rows > len(frame)
    pd.testing.assert_frame_equal(training.training_rows(location, dataset, "lightgbm", _settings(tmp_path)), frame)
    unbounded = dataset.model_copy(update={"training": dataset.training.model_copy(update={"max_rows": None})})
    pd.testing.assert_frame_equal(training.training_rows(location, unbounded, "naive", _settings(tmp_path)), frame)


def test_a_test_window_bigger_than_half_the_budget_is_sampled_too(tmp_path: Path) -> None:
    dataset, location, frame = _training_set(tmp_path)
    budget = 400  # 30 series x 14 test days = 420 test rows
    bounded = dataset.model_copy(update={"training": dataset.training.model_copy(update={"max_rows": budget})})
    sample = training.training_rows(location, bounded, "xgboost", _settings(tmp_path))
    cutoff = min(fold.cutoff for fold in make_folds(frame[EVENT_TIMESTAMP], dataset))
    tests = int((sample[EVENT_TIMESTAMP] > cutoff).sum())
    assert 0.3 * budget < tests < 0.7 * budget
    assert (sample[EVENT_TIMESTAMP] <= cutoff).sum() > 0
