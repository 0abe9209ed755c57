"""M4's scoring (benchmarks/m4/metrics.py) and the bench's baselines (benchmarks/m4/peers.py)
reproduce the competition's own benchmark rows from the data: Naive2, seasonal naive and naive on
Hourly and Weekly, and the naive 95 % interval's MSIS and ACD, each as ``data/m4/published_*.csv``
gives it. If any rule differed (the seasonality test, the
decomposition, MASE's scale, the interval score), these numbers would not come out."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from benchmarks.m4 import data, metrics, peers


def published(file: str, method: str) -> dict[str, float]:
    with (data.M4_DIR / file).open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["method"] == method)
    return {k: float(v) for k, v in row.items() if k not in ("method", "team", "kind")}


@pytest.fixture(scope="module", params=["hourly", "weekly"])
def frequency(request: pytest.FixtureRequest) -> tuple[str, data.M4Series, data.Frequency]:
    return request.param, data.load(request.param), data.FREQUENCIES[request.param]


def test_the_files_hold_every_series_with_its_horizon(frequency: tuple[str, data.M4Series, data.Frequency]) -> None:
    name, series, spec = frequency
    assert len(series.ids) == {"hourly": 414, "weekly": 359}[name]
    assert series.test.shape == (len(series.ids), spec.horizon)
    assert min(len(t) for t in series.train) == {"hourly": 700, "weekly": 80}[name]
    assert not any(np.isnan(t).any() for t in series.train)


@pytest.mark.parametrize("method", peers.BASELINES)
def test_the_benchmarks_score_as_published(frequency, method: str) -> None:  # type: ignore[no-untyped-def]
    """The rows ``make bench-m4`` computes for the competition's benchmarks, as it scores them."""
    name, series, spec = frequency
    forecasts = {f.model: f for f in peers.baselines(series, spec)}
    reference = metrics.score(series.train, series.test, forecasts["Naive2"].point, spec.seasonal_period)
    scores = metrics.score(series.train, series.test, forecasts[method].point, spec.seasonal_period, reference)
    row = published("published_point.csv", method)
    assert round(scores.smape, 3) == row[f"smape_{name}"]
    assert round(scores.mase, 3) == row[f"mase_{name}"]
    assert scores.owa == pytest.approx(row[f"owa_{name}"], abs=1e-3)  # published from the rounded means


def test_the_naive_interval_scores_as_published(frequency: tuple[str, data.M4Series, data.Frequency]) -> None:
    """The naive row's 95 % interval (R's forecast::naive: ±1.96 sigma √h, sigma the root mean square of
    the one-step in-sample changes) scores the published MSIS and ACD."""
    name, series, spec = frequency
    naive = next(f for f in peers.baselines(series, spec) if f.model == "Naive")
    assert naive.interval is not None
    scores = metrics.score(series.train, series.test, naive.point, spec.seasonal_period, interval=naive.interval)
    row = published("published_intervals_95.csv", "Naive")
    assert scores.msis is not None
    assert scores.acd is not None
    assert round(scores.msis, 3) == row[f"msis_{name}"]
    assert round(scores.acd, 3) == pytest.approx(row[f"acd_{name}"], abs=1e-9)


def test_the_seasonality_test_finds_a_season_and_leaves_noise_alone() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(24 * 30)
    seasonal = 100 + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, len(t))
    noise = 100 + rng.normal(0, 1, len(t))
    assert metrics.is_seasonal(seasonal, 24)
    assert not metrics.is_seasonal(noise, 24)
    assert not metrics.is_seasonal(seasonal[: 24 * 3 - 1], 24), "under three seasons: not tested, not seasonal"
    # Naive2 puts the season back: the adjusted last value times each step's index.
    forecast = metrics.naive2(seasonal, 48, 24)
    assert np.corrcoef(forecast, 100 + 20 * np.sin(2 * np.pi * (len(t) + np.arange(48)) / 24))[0, 1] > 0.99


def test_each_metric_on_numbers_worked_by_hand() -> None:
    actual = np.array([[10.0, 20.0]])
    forecast = np.array([[12.0, 20.0]])
    assert metrics.smape(actual, forecast)[0] == pytest.approx(200 / 2 * (2 / 22))
    train = np.array([1.0, 3.0, 2.0, 6.0])  # lag-2 differences: 1, 3 -> scale 2
    assert metrics.seasonal_scale(train, 2) == 2.0
    assert metrics.mase(actual, forecast, np.array([2.0]))[0] == pytest.approx(0.5)
    lower, upper = np.array([[9.0, 21.0]]), np.array([[11.0, 23.0]])  # the second step misses by 1 below
    assert metrics.msis(actual, lower, upper, np.array([2.0]))[0] == pytest.approx((2 + 2 + 40 * 1) / 2 / 2)
    assert metrics.acd(actual, lower, upper) == pytest.approx(0.45)
