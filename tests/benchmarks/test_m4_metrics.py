"""M4's scoring (benchmarks/m4/metrics.py) reproduces the competition's own benchmark rows from the
data: Naive2, seasonal naive and naive on Hourly and Weekly, and the naive 95 % interval's MSIS and
ACD, each as ``data/m4/published_*.csv`` gives it. If any rule differed (the seasonality test, the
decomposition, MASE's scale, the interval score), these numbers would not come out."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from benchmarks.m4 import data, metrics

NORMAL_975 = 1.959963984540054  # the two-sided 95 % normal quantile, as R's qnorm(0.975)


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


@pytest.mark.parametrize(
    ("method", "forecast"),
    [
        ("Naive2", lambda train, h, m: metrics.naive2(train, h, m)),
        ("sNaive", lambda train, h, m: metrics.seasonal_naive(train, h, m)),
        ("Naive", lambda train, h, m: metrics.seasonal_naive(train, h, 1)),
    ],
)
def test_the_benchmarks_score_as_published(frequency, method, forecast) -> None:  # type: ignore[no-untyped-def]
    name, series, spec = frequency
    m = spec.seasonal_period
    naive2 = np.stack([metrics.naive2(t, spec.horizon, m) for t in series.train])
    reference = metrics.score(series.train, series.test, naive2, m)
    points = np.stack([forecast(t, spec.horizon, m) for t in series.train])
    scores = metrics.score(series.train, series.test, points, m, reference)
    row = published("published_point.csv", method)
    assert round(scores.smape, 3) == row[f"smape_{name}"]
    assert round(scores.mase, 3) == row[f"mase_{name}"]
    assert scores.owa == pytest.approx(row[f"owa_{name}"], abs=1e-3)  # published from the rounded means


def test_the_naive_interval_scores_as_published(frequency: tuple[str, data.M4Series, data.Frequency]) -> None:
    """The naive forecast's 95 % interval as R's forecast::naive gives it: ±1.96 sigma √h, sigma the root
    mean square of the one-step in-sample changes."""
    name, series, spec = frequency
    steps = np.sqrt(np.arange(1, spec.horizon + 1))
    sigma = np.array([np.sqrt(np.mean(np.diff(t) ** 2)) for t in series.train])[:, None]
    point = np.stack([np.full(spec.horizon, t[-1]) for t in series.train])
    interval = (point - NORMAL_975 * sigma * steps, point + NORMAL_975 * sigma * steps)
    scores = metrics.score(series.train, series.test, point, spec.seasonal_period, interval=interval)
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
