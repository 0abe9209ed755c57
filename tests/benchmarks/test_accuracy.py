"""The accuracy benchmark's protocol: windows, split borders, scaling, report format, intervals."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.accuracy.intervals import fit_mlforecast, interval_scores, mlforecast_points
from benchmarks.accuracy.models import run
from benchmarks.accuracy.protocol import BenchmarkConfig, MLForecastPeer, Split, make_windows, split_series
from benchmarks.accuracy.report import check_targets, write_report
from core.settings import PROJECT_ROOT, Settings
from tests.utils.data import synthetic_config

INTERVAL_KEYS = ["dataset", "model", "horizon", "level", "coverage", "width", "interval_score"]


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
    assert config.intervals is not None
    assert (config.intervals.horizon, config.intervals.levels, config.intervals.tolerance) == (96, [0.8, 0.95], 0.02)
    assert set(config.intervals.families) == {f for f, horizons in config.models.items() if 96 in horizons}
    assert config.intervals.mlforecast is not None
    assert config.intervals.mlforecast.family == "lightgbm"


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
    report = run(config, settings)
    assert report.intervals == []
    verdicts = check_targets(report, config)
    write_report(report, verdicts, config, tmp_path / "reports")
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


def test_interval_scores_by_hand() -> None:
    actual = np.array([[2.0, 5.0], [3.0, 0.0]])
    lower = np.array([[0.0, 0.0], [0.0, 1.0]])
    upper = np.array([[2.0, 4.0], [2.0, 3.0]])
    scores = interval_scores(actual, lower, upper, level=0.8)
    # inside (on the bound); 1 above [0, 4]; 1 above [0, 2]; 1 below [1, 3]; a miss costs 2 / 0.2 = 10 a unit
    assert scores.coverage == pytest.approx(0.25)
    assert scores.width == pytest.approx((2 + 4 + 2 + 2) / 4)
    assert scores.interval_score == pytest.approx((2 + (4 + 10) + (2 + 10) + (2 + 10)) / 4)
    assert interval_scores(actual, lower, upper, level=0.95).interval_score == pytest.approx((2 + 44 + 42 + 42) / 4)


def sine_dataset(directory: Path, days: int, sigma: float, seed: int = 3) -> tuple[Path, np.ndarray]:
    """One hourly site: a daily sine plus Gaussian noise of ``sigma``, in the synthetic dataset's shape."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24)
    temp = 20 + 3 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, sigma, hours.size)
    stamps = pd.date_range("2024-01-01", periods=hours.size, freq="h")
    frame = pd.DataFrame(
        {"site": "site_0", "ts": stamps.strftime("%Y-%m-%d %H:%M:%S"), "load": 10.0, "aux": 5.0, "temp": temp}
    )
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "series.csv", index=False)
    path = directory / "synthetic.yaml"
    path.write_text(yaml.safe_dump(synthetic_config("series.csv")))
    return path, temp


def bench_config(tmp_path: Path, **raw: Any) -> BenchmarkConfig:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return BenchmarkConfig.from_yaml(path)


def local_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]


def test_conformal_bands_cover_a_noisy_sine_at_the_nominal_levels(tmp_path: Path) -> None:
    """Seasonal naive on sine + N(0, s^2): each error is the difference of two noise draws, N(0, 2 s^2),
    so the band that covers ``level`` is known: 2 z sqrt(2) s wide (standardised by the training std)."""
    sigma = 1.0
    dataset, temp = sine_dataset(tmp_path / "data", days=300, sigma=sigma, seed=0)
    split = {"train": 1000, "validation": 3000, "test": 3000}
    config = bench_config(
        tmp_path,
        dataset=str(dataset),
        series=["site_0"],
        lookback=48,
        horizons=[24],
        split=split,
        models={"seasonal_naive": [24]},
        intervals={"horizon": 24, "levels": [0.8, 0.95], "families": ["seasonal_naive"]},
    )
    report = run(config, local_settings(tmp_path))
    assert [r.model for r in report.results] == ["seasonal_naive"]
    rows = {r.level: r for r in report.intervals}
    assert sorted(rows) == [0.8, 0.95]
    train_std = temp[: split["train"]].std()
    for level, z in ((0.8, 1.2816), (0.95, 1.9600)):
        row = rows[level]
        assert (row.dataset, row.model, row.horizon, row.origins) == ("site_0", "seasonal_naive", 24, 3000 - 24 + 1)
        assert abs(row.coverage - level) <= 0.02, row
        assert row.width == pytest.approx(2 * z * np.sqrt(2) * sigma / train_std, rel=0.05)
        assert row.interval_score > row.width
        assert row.calibration_windows == 3000 - 24 + 1
        assert row.point_mse == pytest.approx(report.results[0].mse, abs=1e-4), "the same windows as the point row"
    verdicts = [v for v in check_targets(report, config) if "coverage" in v.check]
    assert len(verdicts) == 2
    assert all(v.passed and v.target for v in verdicts)


@pytest.mark.slow
def test_mlforecast_peer_rows_on_a_small_series(tmp_path: Path) -> None:
    dataset, _ = sine_dataset(tmp_path / "data", days=48, sigma=0.5)
    lightgbm = {"n_estimators": 20, "learning_rate": 0.1, "num_leaves": 7}
    config = bench_config(
        tmp_path,
        dataset=str(dataset),
        series=["site_0"],
        lookback=24,
        horizons=[12],
        split={"train": 600, "validation": 240, "test": 240},
        models={"lightgbm": [12]},
        params={"lightgbm": lightgbm},
        intervals={
            "horizon": 12,
            "families": ["lightgbm"],
            "origin_stride": 5,
            "mlforecast": {"family": "lightgbm"},
        },
    )
    report = run(config, local_settings(tmp_path), intervals_only=True)
    verdicts = check_targets(report, config)
    write_report(report, verdicts, config, tmp_path / "reports")
    rows = json.loads((tmp_path / "reports" / "accuracy.json").read_text())
    assert [r["model"] for r in rows] == ["lightgbm"] + ["lightgbm"] * 2 + ["mlforecast-lightgbm"] * 2
    intervals = rows[1:]
    for row in intervals:
        assert list(row)[:7] == INTERVAL_KEYS
        assert row["horizon"] == 12
        assert row["origins"] == len(range(0, 240 - 12 + 1, 5))
        assert 0.5 < row["coverage"] <= 1.0
        assert 0 < row["width"] < row["interval_score"]
    for model in ("lightgbm", "mlforecast-lightgbm"):
        eighty, ninety_five = (r for r in intervals if r["model"] == model)
        assert (eighty["level"], ninety_five["level"]) == (0.8, 0.95)
        assert ninety_five["width"] > eighty["width"]
        assert ninety_five["coverage"] >= eighty["coverage"]
    peer = [r for r in intervals if r["model"] == "mlforecast-lightgbm"]
    assert all(r["calibration_windows"] == 240 // 12 for r in peer)
    ours = [r for r in intervals if r["model"] == "lightgbm"]
    assert [r["point_mse"] for r in ours] != [r["point_mse"] for r in peer], "two models, not one scored twice"
    widths = [v for v in verdicts if "no wider than mlforecast-lightgbm" in v.check]
    assert len(widths) == 2
    assert all(v.target for v in widths)
    markdown = (tmp_path / "reports" / "accuracy.md").read_text()
    assert "## Prediction intervals" in markdown
    assert "| site_0 | mlforecast-lightgbm | 12 | 0.95 |" in markdown


@pytest.mark.parametrize(("strategy", "differences"), [("direct", []), ("recursive", []), ("direct", [1])])
def test_mlforecast_bands_at_later_origins_are_its_own(strategy: str, differences: list[int]) -> None:
    """The peer's bands at a test origin (its end-of-history offsets around the new_df forecast) are
    the ones mlforecast itself gives there after ``update``."""
    rng = np.random.default_rng(5)
    values = np.sin(2 * np.pi * np.arange(400) / 12) + rng.normal(0, 0.3, 400)
    lookback, horizon, fitted_rows = 12, 6, 300
    peer = MLForecastPeer(strategy=strategy, differences=differences)  # type: ignore[arg-type]
    params = {"n_estimators": 10, "num_leaves": 7, "verbose": -1}
    fit = fit_mlforecast(values[:fitted_rows], horizon, lookback, [0.8, 0.95], peer, params, n_windows=5)
    native = copy.deepcopy(fit.forecaster)
    origins = np.array([fitted_rows, fitted_rows + 17, fitted_rows + 40])
    inputs = np.stack([values[o - lookback : o] for o in origins])
    point = mlforecast_points(fit, inputs, horizon)
    np.testing.assert_allclose(point[0], fit.point)

    native.update(
        pd.DataFrame(
            {"unique_id": "series", "ds": np.arange(fitted_rows, origins[2]), "y": values[fitted_rows : origins[2]]}
        )
    )
    theirs = native.predict(h=horizon, level=[80, 95])
    np.testing.assert_allclose(point[2], theirs["lightgbm"].to_numpy(), rtol=1e-9)
    for level, percent in ((0.8, 80), (0.95, 95)):
        below, above = fit.offsets[level]
        assert (below > 0).all()
        assert (above > 0).all()
        np.testing.assert_allclose(point[2] - below, theirs[f"lightgbm-lo-{percent}"].to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(point[2] + above, theirs[f"lightgbm-hi-{percent}"].to_numpy(), rtol=1e-9)
