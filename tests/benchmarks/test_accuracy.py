"""The accuracy benchmark's protocol: windows, split borders, scaling, report format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.accuracy import (
    BenchmarkConfig,
    Split,
    check_targets,
    make_windows,
    run,
    split_series,
    write_report,
)
from core.settings import PROJECT_ROOT


def test_windows_pair_each_lookback_with_the_next_horizon() -> None:
    values = np.arange(20, dtype=float)
    stamps = pd.date_range("2024-01-01", periods=20, freq="h").to_numpy()
    w = make_windows(values, stamps, "y", lookback=5, horizon=3)
    assert len(w.features) == 20 - 5 - 3 + 1
    first = w.features.iloc[0]
    assert [first[f"y_lag_{k}"] for k in range(5)] == [4.0, 3.0, 2.0, 1.0, 0.0]
    np.testing.assert_array_equal(w.targets[0], [5.0, 6.0, 7.0])
    np.testing.assert_array_equal(w.targets[-1], [17.0, 18.0, 19.0])
    with pytest.raises(ValueError, match="too few"):
        make_windows(values[:7], stamps[:7], "y", lookback=5, horizon=3)


def test_split_starts_one_lookback_early_and_scales_with_training_rows_only() -> None:
    values = np.concatenate([np.full(10, 2.0) + np.arange(10) % 2, np.full(10, 100.0)])
    stamps = np.arange(20)
    parts = split_series(values, stamps, Split(train=10, validation=5, test=5), lookback=3)
    assert parts.train.mean() == pytest.approx(0.0)
    assert parts.train.std() == pytest.approx(1.0)
    assert len(parts.validation) == 5 + 3
    assert len(parts.test) == 5 + 3
    np.testing.assert_array_equal(parts.validation_stamps[:3], [7, 8, 9])
    np.testing.assert_array_equal(parts.test_stamps[:3], [12, 13, 14])
    with pytest.raises(ValueError, match="the split needs"):
        split_series(values[:15], stamps[:15], Split(train=10, validation=5, test=5), lookback=3)


def test_published_config_parses_with_the_papers_split() -> None:
    config = BenchmarkConfig.from_yaml(PROJECT_ROOT / "configs" / "benchmarks" / "ltsf_univariate.yaml")
    assert (config.split.train, config.split.validation, config.split.test) == (8640, 2880, 2880)
    assert config.lookback == 336
    assert config.published is not None
    assert config.published.lookup("ETTh1", "nlinear", 96) == (0.053, 0.177)
    assert config.published.lookup("ETTh2", "nlinear", 96) is None


@pytest.mark.slow
def test_a_small_run_writes_the_report(tmp_path: Path, dataset_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    config_path = tmp_path / "bench.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "dataset": str(dataset_path),
                "series": ["site_0"],
                "lookback": 48,
                "horizons": [12],
                "split": {"train": 700, "validation": 200, "test": 200},
                "models": {"seasonal_naive": [12], "nlinear": [12]},
                "params": {"nlinear": {"epochs": 3}},
                "tuning": {"horizon": 12, "trials": 2, "families": ["nlinear"]},
                "published": {"source": "a test", "results": {"site_0": {"nlinear": {12: [1.0, 1.0]}}}},
            },
            sort_keys=False,
        )
    )
    config = BenchmarkConfig.from_yaml(config_path)
    results = run(config, settings)
    verdicts = check_targets(results, config)
    write_report(results, verdicts, config, tmp_path / "reports")
    rows = json.loads((tmp_path / "reports" / "accuracy.json").read_text())
    assert [r["model"] for r in rows] == ["seasonal_naive", "nlinear", "nlinear+optuna"]
    for row in rows:
        assert list(row)[:7] == ["dataset", "model", "horizon", "mse", "mae", "published_mse", "published_mae"]
        assert row["mse"] > 0
    nlinear = rows[1]
    assert nlinear["published_mse"] == 1.0
    assert nlinear["mse"] < rows[0]["mse"], "the learnt model beats seasonal naive on learnable data"
    # the synthetic 'published' number is far off: the check must say so
    published_check = next(v for v in verdicts if "published" in v.check)
    assert published_check.passed is (abs(nlinear["mse"] - 1.0) <= 0.1)
    assert "| site_0 | nlinear | 12 |" in (tmp_path / "reports" / "accuracy.md").read_text()
