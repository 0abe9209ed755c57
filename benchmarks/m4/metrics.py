"""M4's scoring, as the organizers' evaluation code computes it.

Point forecasts: sMAPE and MASE per series, each averaged over a frequency's series, and OWA, the mean
of the two relative to Naive2's (Naive2 is computed here in the same run, by the competition's rule:
the naive forecast of the seasonally adjusted series, adjusted only where a 90 % autocorrelation test
at lag m finds a season). Intervals (95 %): MSIS, the interval score scaled as MASE is, and ACD, the
absolute gap between the coverage over all series and steps and 0.95.

Arrays are (series, H) for the forecasts and tests; training values are one array per series, since
M4's series have lengths of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05  # the 95 % interval M4 scored
Z_90 = 1.645  # M4's seasonality test: one-sided 90 %


def seasonal_scale(train: np.ndarray, m: int) -> float:
    """MASE's and MSIS's denominator: the mean absolute in-sample seasonal difference at lag ``m``."""
    return float(np.mean(np.abs(train[m:] - train[:-m])))


def smape(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Per series (row): 200/H · Σ |y - ŷ| / (|y| + |ŷ|)."""
    return np.asarray(np.mean(200.0 * np.abs(actual - forecast) / (np.abs(actual) + np.abs(forecast)), axis=1))


def mase(actual: np.ndarray, forecast: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per series: mean absolute error over the horizon, divided by the series' in-sample scale."""
    return np.asarray(np.mean(np.abs(actual - forecast), axis=1) / scales)


def msis(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per series: the mean interval score of the 95 % interval, scaled like MASE."""
    below = (2.0 / ALPHA) * (lower - actual) * (actual < lower)
    above = (2.0 / ALPHA) * (actual - upper) * (actual > upper)
    return np.asarray(np.mean((upper - lower) + below + above, axis=1) / scales)


def acd(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """|coverage - 0.95|, coverage counted over every series and step together."""
    covered = (actual >= lower) & (actual <= upper)
    return float(abs(covered.mean() - (1.0 - ALPHA)))


def acf(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations at lags 1..max_lag (R's ``acf``: one mean, one variance, divided by n)."""
    centred = values - values.mean()
    denominator = float(np.dot(centred, centred))
    return np.array([np.dot(centred[lag:], centred[:-lag]) / denominator for lag in range(1, max_lag + 1)])


def is_seasonal(train: np.ndarray, m: int) -> bool:
    """M4's test: |acf(m)| above 1.645/√n · √(1 + 2 Σ_{k<m} acf(k)²); too short a series (under
    three seasons), or a lag past R's default ``lag.max`` (10·log10 n), is not seasonal."""
    n = len(train)
    if m <= 1 or n < 3 * m or m > int(np.floor(10 * np.log10(n))):
        return False
    correlations = acf(train, m)
    limit = Z_90 / np.sqrt(n) * np.sqrt(1.0 + 2.0 * np.sum(correlations[:-1] ** 2))
    return bool(abs(correlations[-1]) > limit)


def seasonal_indices(train: np.ndarray, m: int) -> np.ndarray:
    """Classical multiplicative decomposition (R's ``decompose``): each phase's mean ratio of the
    values to their centred moving average, normalised to a mean of 1; phase ``t mod m`` of value t."""
    n = len(train)
    weights = np.full(m + 1, 1.0 / m) if m % 2 == 0 else np.full(m, 1.0 / m)
    if m % 2 == 0:
        weights[0] = weights[-1] = 0.5 / m
    half = len(weights) // 2
    trend = np.full(n, np.nan)
    trend[half : n - half] = np.convolve(train, weights, mode="valid")
    ratios = train / trend
    figure = np.array([np.nanmean(ratios[phase::m]) for phase in range(m)])
    return np.asarray(figure / figure.mean())


def naive2(train: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """M4's Naive2: the last seasonally adjusted value, seasonality put back for each step ahead."""
    if not is_seasonal(train, m):
        return np.full(horizon, train[-1])
    figure = seasonal_indices(train, m)
    n = len(train)
    ahead = figure[(n + np.arange(horizon)) % m]
    return np.asarray(train[-1] / figure[(n - 1) % m] * ahead)


def seasonal_naive(train: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """The values one season back, for each step ahead (m = 1: the last value)."""
    return np.asarray(train[len(train) - m + np.arange(horizon) % m])


@dataclass(frozen=True)
class Scores:
    """A model's averages over a frequency's series, as M4 published them."""

    smape: float
    mase: float
    owa: float | None = None  # relative to the Naive2 of the same run
    msis: float | None = None
    acd: float | None = None

    def rounded(self) -> dict[str, float | None]:
        return {k: (None if v is None else round(v, 3)) for k, v in self.__dict__.items()}


def score(
    train: Sequence[np.ndarray],
    actual: np.ndarray,
    forecast: np.ndarray,
    m: int,
    reference: Scores | None = None,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
) -> Scores:
    """sMAPE and MASE averaged over the series; OWA against ``reference`` (Naive2's scores of the same
    series) and MSIS/ACD of a 95 % ``interval`` (lower, upper) where given."""
    scales = np.array([seasonal_scale(values, m) for values in train])
    point_smape = float(np.mean(smape(actual, forecast)))
    point_mase = float(np.mean(mase(actual, forecast, scales)))
    owa = None
    if reference is not None:
        owa = 0.5 * (point_smape / reference.smape + point_mase / reference.mase)
    bands: dict[str, float] = {}
    if interval is not None:
        lower, upper = interval
        bands = {"msis": float(np.mean(msis(actual, lower, upper, scales))), "acd": acd(actual, lower, upper)}
    return Scores(smape=point_smape, mase=point_mase, owa=owa, **bands)
