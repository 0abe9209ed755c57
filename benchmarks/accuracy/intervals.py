"""The accuracy benchmark's interval rows: split-conformal bands from the validation split's errors
of the fitted model, as every bundle carries them, scored on the test split (coverage, width,
interval score), beside mlforecast's conformal intervals with the same base learner on the same
splits and test origins (the peer; mlforecast is imported only when it runs)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.accuracy.protocol import (
    BenchmarkConfig,
    BenchmarkIntervals,
    Fitted,
    MLForecastPeer,
    SplitSeries,
    Windows,
)
from core.columns import lag_name
from model_bundle.intervals import calibrate, level_key, movement, score_bands

log = logging.getLogger(__name__)


@dataclass
class IntervalResult:
    """One family's (or the peer's) bands on the test split at one level, on the standardised scale."""

    dataset: str
    model: str
    horizon: int
    level: float
    coverage: float  # share of test targets inside the band
    width: float  # mean width (upper - lower)
    interval_score: float  # Winkler: width + 2/(1 - level) x distance outside, mean over windows and steps
    origins: int  # test windows scored
    calibration: str  # where the widths came from
    calibration_windows: int  # errors per step the widths were taken from
    point_mse: float  # the point forecasts' MSE on the same origins, to read widths against
    fit_seconds: float | None = None


@dataclass(frozen=True)
class IntervalScores:
    coverage: float
    width: float
    interval_score: float


def interval_scores(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> IntervalScores:
    """Coverage, mean width and interval (Winkler) score over every element (window and step).

    The interval score rewards narrow bands and charges ``2 / (1 - level)`` per unit a target falls
    outside, so a band cannot win by being narrow and missing: lower is better, at a fixed level.
    """
    scores = score_bands(lower, upper, actual, level)
    return IntervalScores(float(scores.inside.mean()), float(scores.width.mean()), float(scores.interval_score.mean()))


def scored_origins(windows: int, stride: int) -> np.ndarray:
    """Indices of the test windows interval rows are scored on: every ``stride``-th from the first."""
    return np.arange(0, windows, stride)


def _interval_result(
    series: str,
    model: str,
    level: float,
    actual: np.ndarray,
    point: np.ndarray,
    offsets: tuple[np.ndarray, np.ndarray],
    calibration: str,
    calibration_windows: int,
    fit_seconds: float | None,
) -> IntervalResult:
    """Score ``point`` (origins, H) with bands ``point - below`` to ``point + above`` (each (H,))."""
    below, above = offsets
    scores = interval_scores(actual, point - below, point + above, level)
    log.info(
        "%s %s H=%d level %s: coverage %.3f width %.3f interval score %.3f",
        series,
        model,
        point.shape[1],
        level_key(level),
        scores.coverage,
        scores.width,
        scores.interval_score,
    )
    return IntervalResult(
        dataset=series,
        model=model,
        horizon=int(point.shape[1]),
        level=level,
        coverage=round(scores.coverage, 5),
        width=round(scores.width, 5),
        interval_score=round(scores.interval_score, 5),
        origins=int(point.shape[0]),
        calibration=calibration,
        calibration_windows=calibration_windows,
        point_mse=round(float(np.mean((point - actual) ** 2)), 5),
        fit_seconds=None if fit_seconds is None else round(fit_seconds, 2),
    )


def conformal_rows(
    series: str,
    model: str,
    fitted: Fitted,
    validation: Windows,
    test: Windows,
    spec: BenchmarkIntervals,
    moving: list[str] | None = None,
) -> list[IntervalResult]:
    """Our protocol: half-widths per step from the validation split's out-of-sample errors of the
    fitted model (what a bundle's calibration does with the backtest's), applied to its test forecasts;
    with ``moving`` (the target's consecutive lag columns), adaptive widths in units of each window's
    recent movement, as a bundle's with ``intervals.adaptive``."""
    assert fitted.test is not None
    errors = validation.targets - fitted.validation
    origins = scored_origins(len(test.targets), spec.origin_stride)
    entities = np.array([series] * len(errors))
    if moving:
        scales = movement(validation.features[moving].to_numpy(dtype=np.float64)).ravel()
        calibration = calibrate(errors, entities, spec.levels, len(errors) + 1, scales, moving)
        how = f"adaptive split conformal on the validation split's errors ({len(moving)} lags' movement)"
    else:
        calibration = calibrate(errors, entities, spec.levels, len(errors) + 1)
        how = "split conformal on the validation split's errors"
    rows = []
    point = fitted.test[origins]
    bands = calibration.bands(point, None, test.features.iloc[origins])
    for level in spec.levels:
        lower, upper = bands[level]
        rows.append(
            _interval_result(
                series,
                model,
                level,
                test.targets[origins],
                point,
                (point - lower, upper - point),
                how,
                len(errors),
                fitted.seconds,
            )
        )
    return rows


@dataclass
class PeerFit:
    """A fitted MLForecast and its bands at the end of the history it was given: per level, how far
    below and above the point forecast each step's band reaches."""

    forecaster: Any  # mlforecast.MLForecast
    model: str  # its model's column name
    point: np.ndarray  # (H,) forecast from the end of the history
    offsets: dict[float, tuple[np.ndarray, np.ndarray]]
    calibration_windows: int
    seconds: float


def _percent(level: float) -> int | float:
    """mlforecast's spelling of a level: 80 for 0.8 (its column names carry it as given)."""
    percent = float(level_key(level))
    return int(percent) if percent.is_integer() else percent


def fit_mlforecast(
    history: np.ndarray,
    horizon: int,
    lookback: int,
    levels: list[float],
    peer: MLForecastPeer,
    params: dict[str, Any],
    n_windows: int,
) -> PeerFit:
    """MLForecast with a LightGBM regressor of ``params`` on lags 1..lookback of ``history`` (one
    series), conformal intervals from ``n_windows`` windows of ``horizon`` steps at its end.

    Its bands are the point forecast plus quantiles of that series' conformity scores: they do not
    depend on where the forecast starts. So the offsets taken here, at the end of the history, are the
    ones mlforecast gives at any later origin (``update`` then ``predict(level=...)``, which a test
    checks), and applying them to the point forecasts of many origins at once (:func:`mlforecast_points`)
    gives its intervals there without a predict call per origin. (``predict(new_df=..., level=...)``
    would recalibrate on each new series instead.)
    """
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.target_transforms import Differences
    from mlforecast.utils import PredictionIntervals

    lags = lookback - sum(peer.differences)
    if lags < 1 or any(d < 1 for d in peer.differences):
        raise ValueError(f"differences {peer.differences} leave no lags of a look-back of {lookback}")
    started = time.monotonic()
    forecaster = MLForecast(
        models={peer.family: lgb.LGBMRegressor(**params)},
        freq=1,
        lags=range(1, lags + 1),
        target_transforms=[Differences(peer.differences)] if peer.differences else None,
    )
    frame = pd.DataFrame({"unique_id": "series", "ds": np.arange(len(history)), "y": history})
    forecaster.fit(
        frame,
        max_horizon=horizon if peer.strategy == "direct" else None,
        prediction_intervals=PredictionIntervals(n_windows=n_windows, h=horizon, method=peer.method),
    )
    percents = [_percent(level) for level in levels]
    end = forecaster.predict(h=horizon, level=percents)
    point = end[peer.family].to_numpy(dtype=np.float64)
    offsets = {
        level: (
            point - end[f"{peer.family}-lo-{percent}"].to_numpy(dtype=np.float64),
            end[f"{peer.family}-hi-{percent}"].to_numpy(dtype=np.float64) - point,
        )
        for level, percent in zip(levels, percents, strict=True)
    }
    return PeerFit(forecaster, peer.family, point, offsets, n_windows, time.monotonic() - started)


def mlforecast_points(fit: PeerFit, inputs: np.ndarray, horizon: int) -> np.ndarray:
    """Point forecasts (origins, H) from each row of ``inputs`` (origins, lookback; oldest first):
    one call, each origin a series of its own (``new_df``). Leaves ``fit.forecaster`` predicting
    those series from then on, as mlforecast does."""
    origins, lookback = inputs.shape
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(origins), lookback),
            "ds": np.tile(np.arange(lookback), origins),
            "y": inputs.ravel(),
        }
    )
    out = fit.forecaster.predict(h=horizon, new_df=frame).sort_values(["unique_id", "ds"])
    return np.asarray(out[fit.model].to_numpy(dtype=np.float64).reshape(origins, horizon))


def mlforecast_rows(
    series: str,
    target: str,
    parts: SplitSeries,
    test: Windows,
    spec: BenchmarkIntervals,
    config: BenchmarkConfig,
    params: dict[str, Any],
) -> list[IntervalResult]:
    """The peer on the same splits: fitted on train + validation (what our calibration sees), its
    point forecasts and bands at the same test origins as ours, from the same inputs."""
    peer = spec.mlforecast
    assert peer is not None
    horizon, lookback = spec.horizon, config.lookback
    history = np.concatenate([parts.train, parts.validation[lookback:]])
    n_windows = peer.n_windows or config.split.validation // horizon
    fit = fit_mlforecast(history, horizon, lookback, spec.levels, peer, params, n_windows)
    origins = scored_origins(len(test.targets), spec.origin_stride)
    lags = [lag_name(target, k) for k in reversed(range(lookback))]
    started = time.monotonic()
    point = mlforecast_points(fit, test.features[lags].to_numpy(dtype=np.float64)[origins], horizon)
    # The first test window starts where the fitted history ends: the same forecast both ways, or
    # the origins are not aligned with the splits.
    if not np.allclose(point[0], fit.point, rtol=1e-6, atol=1e-9):
        raise RuntimeError("mlforecast's forecast at the first test origin differs from the end of its history")
    seconds = fit.seconds + time.monotonic() - started
    calibration = (
        f"mlforecast {peer.method}, {peer.strategy}"
        + (f", differences {peer.differences}" if peer.differences else "")
        + f", {n_windows} windows of {horizon} (refit=False) ending train + validation"
    )
    return [
        _interval_result(
            series,
            peer.model,
            level,
            test.targets[origins],
            point,
            fit.offsets[level],
            calibration,
            n_windows,
            seconds,
        )
        for level in spec.levels
    ]
