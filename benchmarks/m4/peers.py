"""The models M4's rows are made of, each run on a frequency's series and scored by M4's rules.

* the competition's own benchmarks, computed here: Naive2 (OWA's reference), seasonal naive and naive
  (with R's naive 95 % interval, ±1.96 sigma √h);
* peers of the same run: statsforecast's AutoETS, AutoTheta and AutoARIMA (model selection on
  approximate likelihoods where R's auto.arima would), each alone, and mlforecast with LightGBM on lags
  of each series scaled on its own (``LocalStandardScaler``), its 95 % interval conformal over the
  last horizons of each series (:func:`conformal_windows`).

statsforecast and mlforecast are the benchmarks' dependencies (``requirements-bench.txt``), imported
only when their peer runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.m4 import metrics
from benchmarks.m4.data import Frequency, M4Series

NORMAL_975 = 1.959963984540054
STATSFORECAST = ("AutoETS", "AutoTheta", "AutoARIMA")
PEERS = (*STATSFORECAST, "mlforecast_lightgbm")
BASELINES = ("Naive2", "sNaive", "Naive")


@dataclass(frozen=True)
class Forecasts:
    model: str
    point: np.ndarray  # (series, H)
    interval: tuple[np.ndarray, np.ndarray] | None  # 95 %: (lower, upper), each (series, H)
    fit_s: float
    predict_s: float


def baselines(series: M4Series, spec: Frequency) -> list[Forecasts]:
    """Naive2, seasonal naive and naive (the last with its interval), as the competition computed them."""
    h, m = spec.horizon, spec.seasonal_period
    rows = []
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "Naive2": lambda t: metrics.naive2(t, h, m),
        "sNaive": lambda t: metrics.seasonal_naive(t, h, m),
        "Naive": lambda t: metrics.seasonal_naive(t, h, 1),
    }
    for name in BASELINES:
        forecast = methods[name]
        started = time.perf_counter()
        point = np.stack([forecast(train) for train in series.train])
        interval = None
        if name == "Naive":
            sigma = np.array([np.sqrt(np.mean(np.diff(train) ** 2)) for train in series.train])[:, None]
            spread = NORMAL_975 * sigma * np.sqrt(np.arange(1, h + 1))
            interval = (point - spread, point + spread)
        rows.append(Forecasts(name, point, interval, 0.0, time.perf_counter() - started))
    return rows


def long_frame(series: M4Series) -> pd.DataFrame:
    """Nixtla's long layout: ``unique_id``, ``ds`` (the step number: M4 has no timestamps), ``y``."""
    parts = [
        pd.DataFrame({"unique_id": name, "ds": np.arange(1, len(values) + 1), "y": values})
        for name, values in zip(series.ids, series.train, strict=True)
    ]
    return pd.concat(parts, ignore_index=True)


def _in_order(frame: pd.DataFrame, series: M4Series, column: str, horizon: int) -> np.ndarray:
    """A forecast column of a Nixtla frame as (series, H), in the files' order of series."""
    ordered = frame.set_index("unique_id").loc[series.ids]
    return ordered[column].to_numpy(dtype=np.float64).reshape(len(series.ids), horizon)


def statsforecast_peer(name: str, series: M4Series, spec: Frequency, jobs: int = -1) -> Forecasts:
    """One statsforecast model alone, fitted per series in ``jobs`` processes (-1: one per core), with its
    95 % interval. ``jobs=1`` fits in this process: statsforecast's pool forks, and a fork taken while
    another thread holds a lock (a test worker's) can hang the child."""
    from statsforecast import StatsForecast
    from statsforecast import models as sf_models

    options: dict[str, object] = {}
    if name == "AutoARIMA":
        # R's auto.arima (M4's ARIMA) selects on approximate likelihoods for long or seasonal-over-12
        # series; statsforecast's default is exact, which took 13 s a series on M4 Hourly here.
        shortest = min(len(values) for values in series.train)
        options["approximation"] = spec.seasonal_period > 12 or shortest > 150
    model = getattr(sf_models, name)(season_length=spec.seasonal_period, **options)
    engine = StatsForecast(models=[model], freq=1, n_jobs=jobs)
    frame = long_frame(series)
    started = time.perf_counter()
    engine.fit(frame)
    fitted = time.perf_counter()
    forecast = engine.predict(h=spec.horizon, level=[95]).reset_index()
    predicted = time.perf_counter()
    interval = (
        _in_order(forecast, series, f"{name}-lo-95", spec.horizon),
        _in_order(forecast, series, f"{name}-hi-95", spec.horizon),
    )
    point = _in_order(forecast, series, name, spec.horizon)
    return Forecasts(name, point, interval, fitted - started, predicted - fitted)


def mlforecast_lags(spec: Frequency) -> list[int]:
    """One season of lags (the horizon's where that is longer) and the longer cycle the competition's m
    leaves out: a week back hourly (168), a year back weekly (52)."""
    span = max(spec.seasonal_period, spec.horizon)
    extra = [168] if spec.seasonal_period == 24 else [52] if spec.name == "Weekly" else []
    return sorted({*range(1, span + 1), *extra})


def conformal_windows(series: M4Series, spec: Frequency) -> int:
    """As many horizons (2 to 10) as the shortest series holds after its longest lag: with two, each
    step's 95 % width is the larger of two errors, which under-covers."""
    room = (min(len(values) for values in series.train) - max(mlforecast_lags(spec)) - 1) // spec.horizon
    return max(2, min(10, room))


def mlforecast_peer(series: M4Series, spec: Frequency, jobs: int = -1) -> Forecasts:
    """LightGBM on lags of each series standardised on its own, recursive over the horizon, in ``jobs``
    threads (-1: LightGBM's default)."""
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.target_transforms import LocalStandardScaler
    from mlforecast.utils import PredictionIntervals

    engine = MLForecast(
        models={
            "lgbm": LGBMRegressor(
                n_estimators=200, learning_rate=0.05, num_leaves=63, verbosity=-1, seed=0, n_jobs=jobs
            )
        },
        freq=1,
        lags=mlforecast_lags(spec),
        target_transforms=[LocalStandardScaler()],
    )
    frame = long_frame(series)
    started = time.perf_counter()
    engine.fit(
        frame, prediction_intervals=PredictionIntervals(n_windows=conformal_windows(series, spec), h=spec.horizon)
    )
    fitted = time.perf_counter()
    forecast = engine.predict(spec.horizon, level=[95])
    predicted = time.perf_counter()
    interval = (
        _in_order(forecast, series, "lgbm-lo-95", spec.horizon),
        _in_order(forecast, series, "lgbm-hi-95", spec.horizon),
    )
    point = _in_order(forecast, series, "lgbm", spec.horizon)
    return Forecasts("mlforecast_lightgbm", point, interval, fitted - started, predicted - fitted)


RUNNERS: dict[str, Callable[[M4Series, Frequency, int], Forecasts]] = {
    **{name: functools.partial(statsforecast_peer, name) for name in STATSFORECAST},
    "mlforecast_lightgbm": mlforecast_peer,
}
