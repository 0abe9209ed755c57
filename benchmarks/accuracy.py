"""Accuracy benchmark: a published long-horizon protocol, run through the platform's model families.

``python -m benchmarks.accuracy --config configs/benchmarks/ltsf_univariate.yaml`` writes
``reports/accuracy.json`` (one object per series, model and horizon), ``reports/accuracy.md`` and
``reports/accuracy.png`` (MSE and MAE per horizon against the published numbers).
The families are the ones training uses, unchanged: the benchmark only builds their feature rows (the
last ``lookback`` target values as lag columns) from the split series. Results that match the papers
show that the families and their training loop are neither leaking (better) nor broken (worse).

With an ``intervals:`` section it also measures the prediction intervals every bundle carries:
split-conformal half-widths per step (:func:`model_bundle.intervals.conformal_width`) from the
validation split's errors of the model the point rows fitted, scored on the test split (coverage,
mean width, interval score), next to mlforecast's conformal intervals with the same base learner on
the same splits and test origins. mlforecast is the benchmarks' own dependency
(``requirements-bench.txt``), imported only when that peer runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.columns import EVENT_TIMESTAMP, lag_name
from core.dataset import DatasetConfig, FeatureConfig
from core.progress import logging_beside_progress, progress, show_progress
from core.settings import Settings
from model_bundle.intervals import conformal_width, level_key, score_bands

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Split(_Strict):
    train: int = Field(gt=0)
    validation: int = Field(gt=0)
    test: int = Field(gt=0)


class BenchmarkTuning(_Strict):
    horizon: int
    trials: int = Field(default=20, ge=0)
    families: list[str] = Field(default_factory=list)
    trials_per_family: dict[str, int] = Field(default_factory=dict)
    seed: int = 42


class Published(_Strict):
    source: str
    tolerance: float = 0.10
    # series -> model -> horizon -> [mse, mae]
    results: dict[str, dict[str, dict[int, tuple[float, float]]]] = Field(default_factory=dict)

    def lookup(self, series: str, model: str, horizon: int) -> tuple[float, float] | None:
        return self.results.get(series, {}).get(model, {}).get(horizon)


class MLForecastPeer(_Strict):
    """mlforecast's conformal intervals with one of our families' base learner and parameters.

    ``direct`` trains one model per step as our tree families do, so the two differ only in how the
    intervals are made; ``recursive`` (one model fed its own forecasts) costs about 1/H of it but is a
    different forecaster. ``n_windows`` windows of H steps end the history mlforecast is given; by
    default as many as the validation split holds, so its calibration model is trained on the
    training split and its errors come from the validation split, as ours do. ``differences``:
    mlforecast's ``Differences`` target transform (e.g. ``[1]``), so its trees learn changes rather than
    levels, as ours do (they forecast the change from the newest value); its lags then shrink by their
    sum, so it reads the same ``lookback`` values.
    """

    family: Literal["lightgbm"] = "lightgbm"
    strategy: Literal["direct", "recursive"] = "direct"
    method: Literal["conformal_distribution", "conformal_error"] = "conformal_distribution"
    n_windows: int | None = Field(default=None, ge=2)
    differences: list[int] = Field(default_factory=list)

    @property
    def model(self) -> str:
        return f"mlforecast-{self.family}"


class BenchmarkIntervals(_Strict):
    """Interval rows: which families, at which horizon and levels, scored on which test origins.

    Every row, ours and the peer's, is scored on the same test windows: every ``origin_stride``-th,
    starting with the first (1: all of them, the windows the point rows score).
    """

    horizon: int = Field(gt=0)
    levels: list[float] = Field(default_factory=lambda: [0.8, 0.95])
    families: list[str] = Field(min_length=1)
    tolerance: float = Field(default=0.02, gt=0)  # coverage within this of the nominal level
    origin_stride: int = Field(default=1, ge=1)
    mlforecast: MLForecastPeer | None = None

    @field_validator("levels")
    @classmethod
    def _levels_are_shares(cls, levels: list[float]) -> list[float]:
        if not levels or any(not 0 < level < 1 for level in levels):
            raise ValueError(f"levels must be shares between 0 and 1, got {levels}")
        return sorted(set(levels))


class BenchmarkConfig(_Strict):
    dataset: Path
    series: list[str]
    lookback: int = Field(gt=0)
    horizons: list[int]
    split: Split
    models: dict[str, list[int]]
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tuning: BenchmarkTuning | None = None
    published: Published | None = None
    intervals: BenchmarkIntervals | None = None

    @model_validator(mode="after")
    def _interval_families_run_at_their_horizon(self) -> BenchmarkConfig:
        """Interval rows reuse the point rows' fitted models, so each family must run at that horizon."""
        if self.intervals is not None:
            h = self.intervals.horizon
            missing = [f for f in self.intervals.families if h not in self.models.get(f, [])]
            if h not in self.horizons or missing:
                raise ValueError(f"intervals at horizon {h}: not in horizons {self.horizons} or not run by {missing}")
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> BenchmarkConfig:
        raw = yaml.safe_load(path.read_text())
        raw["dataset"] = (path.parent / raw["dataset"]).resolve()
        return cls.model_validate(raw)


@dataclass
class Result:
    dataset: str
    model: str
    horizon: int
    mse: float
    mae: float
    published_mse: float | None
    published_mae: float | None
    validation_mse: float | None = None
    fit_seconds: float | None = None
    train_rows: int | None = None
    params: dict[str, Any] | None = None


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
    series: str, model: str, fitted: Fitted, validation: Windows, test: Windows, spec: BenchmarkIntervals
) -> list[IntervalResult]:
    """Our protocol: half-widths per step from the validation split's out-of-sample errors of the
    fitted model (what a bundle's calibration does with the backtest's), applied to its test forecasts."""
    assert fitted.test is not None
    errors = validation.targets - fitted.validation
    origins = scored_origins(len(test.targets), spec.origin_stride)
    rows = []
    for level in spec.levels:
        half = conformal_width(errors, level)
        rows.append(
            _interval_result(
                series,
                model,
                level,
                test.targets[origins],
                fitted.test[origins],
                (half, half),
                "split conformal on the validation split's errors",
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


@dataclass
class Windows:
    """Feature rows (lags of the scaled target) and their next-H targets for one split."""

    features: pd.DataFrame
    targets: np.ndarray


def window_dataset(dataset: DatasetConfig, lookback: int, horizon: int) -> DatasetConfig:
    """The source dataset reduced to what the protocol allows: the target's own past, nothing else."""
    features = FeatureConfig(
        target_lags=list(range(lookback)), covariate_lags=[], rolling_windows=[], calendar=[], ttl=dataset.frequency
    )
    return dataset.model_copy(update={"features": [], "feature_engineering": features, "horizon": horizon})


def make_windows(values: np.ndarray, stamps: np.ndarray, target: str, lookback: int, horizon: int) -> Windows:
    """Every window of ``lookback`` inputs followed by ``horizon`` targets inside ``values``."""
    count = len(values) - lookback - horizon + 1
    if count < 1:
        raise ValueError(f"{len(values)} rows are too few for look-back {lookback} and horizon {horizon}")
    ends = np.arange(lookback - 1, lookback - 1 + count)  # index of each window's newest input
    columns = {lag_name(target, k): values[ends - k] for k in range(lookback)}
    features = pd.DataFrame(columns)
    features.insert(0, EVENT_TIMESTAMP, stamps[ends])
    targets = values[ends[:, None] + np.arange(1, horizon + 1)[None, :]]
    return Windows(features, targets)


@dataclass
class SplitSeries:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_stamps: np.ndarray
    validation_stamps: np.ndarray
    test_stamps: np.ndarray


def split_series(values: np.ndarray, stamps: np.ndarray, split: Split, lookback: int) -> SplitSeries:
    """Standardise with training statistics; validation and test start one look-back early."""
    n_train, n_val, n_test = split.train, split.validation, split.test
    if len(values) < n_train + n_val + n_test:
        raise ValueError(f"series has {len(values)} rows; the split needs {n_train + n_val + n_test}")
    mean, std = values[:n_train].mean(), values[:n_train].std()
    scaled = (values - mean) / std
    v0, t0, t1 = n_train - lookback, n_train + n_val - lookback, n_train + n_val + n_test
    return SplitSeries(
        train=scaled[:n_train],
        validation=scaled[v0 : n_train + n_val],
        test=scaled[t0:t1],
        train_stamps=stamps[:n_train],
        validation_stamps=stamps[v0 : n_train + n_val],
        test_stamps=stamps[t0:t1],
    )


@dataclass
class Fitted:
    """One fit's forecasts of the validation and test windows: the point rows score them, and the
    interval rows calibrate on the first and score the second, so nothing is fitted twice."""

    validation: np.ndarray
    test: np.ndarray | None
    seconds: float


def _fit_predict(
    family: str,
    bench_dataset: DatasetConfig,
    params: dict[str, Any],
    train: Windows,
    validation: Windows,
    test: Windows | None,
) -> Fitted:
    """Fit on train (validation for early stopping); forecast the validation and test windows."""
    from model_training.forecasters import create

    started = time.monotonic()
    model = create(family, bench_dataset, params).fit(
        train.features, train.targets, validation=(validation.features, validation.targets)
    )
    seconds = time.monotonic() - started
    return Fitted(
        validation=model.predict(validation.features),
        test=None if test is None else model.predict(test.features),
        seconds=seconds,
    )


def _fit_and_score(
    family: str,
    bench_dataset: DatasetConfig,
    params: dict[str, Any],
    train: Windows,
    validation: Windows,
    test: Windows | None,
) -> tuple[float, float | None, float | None, float]:
    """Fit on train (validation for early stopping); return validation MSE, test MSE and MAE, seconds."""
    fitted = _fit_predict(family, bench_dataset, params, train, validation, test)
    return _scores(fitted, validation, test)


def _scores(
    fitted: Fitted, validation: Windows, test: Windows | None
) -> tuple[float, float | None, float | None, float]:
    val_mse = float(np.mean((fitted.validation - validation.targets) ** 2))
    if test is None or fitted.test is None:
        return val_mse, None, None, fitted.seconds
    error = fitted.test - test.targets
    return val_mse, float(np.mean(error**2)), float(np.mean(np.abs(error))), fitted.seconds


def _tune(
    family: str, bench_dataset: DatasetConfig, base: dict[str, Any], trials: int, seed: int, data: tuple[Windows, ...]
) -> dict[str, Any]:
    """Optuna on validation MSE with the platform's sampler and the family's search space."""
    import optuna

    from model_training.tuning import search_space, suggest

    space = search_space(bench_dataset, family)
    if trials <= 0 or not space:
        return base
    train, validation = data

    def objective(trial: optuna.Trial) -> float:
        params = {**base, **suggest(trial, space)}
        return _fit_and_score(family, bench_dataset, params, train, validation, None)[0]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({k: v for k, v in base.items() if k in space}, skip_if_exists=True)
    study.optimize(objective, n_trials=trials, catch=(FloatingPointError,), show_progress_bar=show_progress())
    log.info("tuned %s: validation MSE %.4f with %s", family, study.best_value, study.best_params)
    return {**base, **study.best_params}


@dataclass
class Report:
    """What a run measured: the point rows, then the interval rows."""

    results: list[Result]
    intervals: list[IntervalResult]


def run(
    config: BenchmarkConfig, settings: Settings, only_models: list[str] | None = None, intervals_only: bool = False
) -> Report:
    """Every configured row; ``intervals_only``: just the fits the interval rows need (their families
    at their horizon, with those fits' point rows) and the peer, no tuning."""
    from data_pipeline.ingest import load_source

    spec = config.intervals
    if intervals_only and spec is None:
        raise ValueError("the config has no intervals section")
    dataset = DatasetConfig.from_yaml(config.dataset)
    raw = load_source(dataset, settings)
    results: list[Result] = []
    intervals: list[IntervalResult] = []
    splits: dict[str, SplitSeries] = {}
    for series in config.series:
        rows = raw[raw[dataset.entity_column] == series].sort_values(dataset.timestamp_column)
        if rows.empty:
            raise ValueError(f"series {series!r} is not in dataset {dataset.name}")
        values = rows[dataset.target].to_numpy(dtype=np.float64)
        splits[series] = split_series(values, rows[dataset.timestamp_column].to_numpy(), config.split, config.lookback)
    # One bar over every (series, horizon): each step fits that horizon's families, named as they run.
    steps = [(series, horizon) for series in config.series for horizon in config.horizons]
    with progress(steps, desc="accuracy", unit="horizon") as bar:
        for series, horizon in bar:
            parts = splits[series]
            bar.set_postfix_str(f"{series} H={horizon}")
            at_interval_horizon = spec is not None and horizon == spec.horizon
            if intervals_only and not at_interval_horizon:
                continue
            bench_dataset = window_dataset(dataset, config.lookback, horizon)

            def windows(part: np.ndarray, stamps: np.ndarray, h: int = horizon) -> Windows:
                return make_windows(part, stamps, dataset.target, config.lookback, h)

            train = windows(parts.train, parts.train_stamps)
            validation = windows(parts.validation, parts.validation_stamps)
            test = windows(parts.test, parts.test_stamps)
            for family, horizons in config.models.items():
                if horizon not in horizons or (only_models and family not in only_models):
                    continue
                with_intervals = spec is not None and at_interval_horizon and family in spec.families
                if intervals_only and not with_intervals:
                    continue
                bar.set_postfix_str(f"{series} H={horizon} {family}")
                params = dict(config.params.get(family, {}))
                result, fitted = _result(
                    series, family, horizon, params, bench_dataset, train, validation, test, config
                )
                results.append(result)
                if with_intervals:
                    assert spec is not None
                    intervals += conformal_rows(series, family, fitted, validation, test, spec)
            if spec is not None and at_interval_horizon and spec.mlforecast is not None:
                peer = spec.mlforecast
                if not only_models or peer.family in only_models or peer.model in only_models:
                    bar.set_postfix_str(f"{series} H={horizon} {peer.model}")
                    params = _family_params(peer.family, bench_dataset, config)
                    intervals += mlforecast_rows(series, dataset.target, parts, test, spec, config, params)
            tuning = config.tuning
            if intervals_only or tuning is None or horizon != tuning.horizon:
                continue
            for family in tuning.families:
                if only_models and family not in only_models:
                    continue
                bar.set_postfix_str(f"{series} H={horizon} {family}+optuna")
                trials = tuning.trials_per_family.get(family, tuning.trials)
                base = dict(config.params.get(family, {}))
                best = _tune(family, bench_dataset, base, trials, tuning.seed, (train, validation))
                results.append(
                    _result(series, f"{family}+optuna", horizon, best, bench_dataset, train, validation, test, config)[
                        0
                    ]
                )
    return Report(results, intervals)


def _family_params(family: str, bench_dataset: DatasetConfig, config: BenchmarkConfig) -> dict[str, Any]:
    """Every parameter our family's model is built with (its defaults, the dataset's, the benchmark's),
    so a peer's base learner is configured exactly as ours."""
    from model_training.forecasters import create

    forecaster = create(family, bench_dataset, dict(config.params.get(family, {})))
    return dict(getattr(forecaster, "params", {}))


def _result(
    series: str,
    model: str,
    horizon: int,
    params: dict[str, Any],
    bench_dataset: DatasetConfig,
    train: Windows,
    validation: Windows,
    test: Windows,
    config: BenchmarkConfig,
) -> tuple[Result, Fitted]:
    family = model.split("+")[0]
    fitted = _fit_predict(family, bench_dataset, params, train, validation, test)
    val_mse, mse, mae, seconds = _scores(fitted, validation, test)
    assert mse is not None
    assert mae is not None
    published = config.published.lookup(series, model, horizon) if config.published else None
    log.info("%s %s H=%d: test MSE %.4f MAE %.4f (%.1fs)", series, model, horizon, mse, mae, seconds)
    result = Result(
        dataset=series,
        model=model,
        horizon=horizon,
        mse=round(mse, 5),
        mae=round(mae, 5),
        published_mse=published[0] if published else None,
        published_mae=published[1] if published else None,
        validation_mse=round(val_mse, 5),
        fit_seconds=round(seconds, 2),
        train_rows=len(train.targets),
        params=params or None,
    )
    return result, fitted


@dataclass
class Verdict:
    check: str
    passed: bool
    detail: str
    target: bool = True  # False: reported for information, not a target of the benchmark


def check_targets(report: Report, config: BenchmarkConfig) -> list[Verdict]:
    """Published MSEs reproduced within tolerance; the best tuned model (chosen on validation) at or
    below NLinear at the tuning horizon. That comparison is a target where NLinear's result is
    published (ours and the paper's must both be matched) and reported for information elsewhere.
    Then the intervals' (:func:`check_intervals`)."""
    results = report.results
    verdicts = []
    tolerance = config.published.tolerance if config.published else 0.0
    for r in results:
        if r.published_mse is None:
            continue
        ratio = r.mse / r.published_mse
        verdicts.append(
            Verdict(
                f"{r.dataset} {r.model} H={r.horizon} within {tolerance:.0%} of published MSE",
                abs(ratio - 1) <= tolerance,
                f"{r.mse:.4f} vs {r.published_mse:.3f} ({ratio - 1:+.1%})",
            )
        )
    if config.tuning is not None:
        h = config.tuning.horizon
        for series in config.series:
            tuned = [r for r in results if r.dataset == series and r.horizon == h and r.model.endswith("+optuna")]
            nlinear = [r for r in results if r.dataset == series and r.horizon == h and r.model == "nlinear"]
            if not tuned or not nlinear:
                continue
            best = min(tuned, key=lambda r: r.validation_mse or float("inf"))
            published = nlinear[0].published_mse
            reference = min(nlinear[0].mse, published) if published else nlinear[0].mse
            verdicts.append(
                Verdict(
                    f"{series} best tuned model at H={h} at or below NLinear's MSE",
                    best.mse <= reference,
                    f"{best.model} {best.mse:.4f} vs NLinear {reference:.4f}",
                    target=published is not None,
                )
            )
    if config.intervals is not None:
        verdicts += check_intervals(report.intervals, config.intervals)
    return verdicts


def check_intervals(rows: list[IntervalResult], spec: BenchmarkIntervals) -> list[Verdict]:
    """Our families' test coverage within ``tolerance`` of each level (the peer's: for information),
    and our base learner's bands no wider than the peer's at equal or better coverage: a narrower band
    that covers less is no better, so the width target needs both."""
    verdicts = []
    peer = spec.mlforecast
    for r in rows:
        verdicts.append(
            Verdict(
                f"{r.dataset} {r.model} H={r.horizon} coverage within {spec.tolerance * 100:g} points of {r.level:.0%}",
                abs(r.coverage - r.level) <= spec.tolerance,
                f"{r.coverage:.3f} ({(r.coverage - r.level) * 100:+.1f} points), width {r.width:.3f}",
                target=peer is None or r.model != peer.model,
            )
        )
    if peer is None:
        return verdicts
    for theirs in (r for r in rows if r.model == peer.model):
        ours = next(
            (
                r
                for r in rows
                if (r.dataset, r.model, r.horizon, r.level)
                == (theirs.dataset, peer.family, theirs.horizon, theirs.level)
            ),
            None,
        )
        if ours is None:
            continue
        verdicts.append(
            Verdict(
                f"{ours.dataset} {ours.model} H={ours.horizon} {ours.level:.0%} band no wider than {peer.model}'s "
                "at equal or better coverage",
                ours.coverage >= theirs.coverage and ours.width <= theirs.width,
                f"width {ours.width:.3f} vs {theirs.width:.3f} ({ours.width / theirs.width - 1:+.1%}), coverage "
                f"{ours.coverage:.3f} vs {theirs.coverage:.3f}, interval score {ours.interval_score:.3f} vs "
                f"{theirs.interval_score:.3f}",
            )
        )
    return verdicts


def write_report(
    report: Report, verdicts: list[Verdict], config: BenchmarkConfig, out_dir: Path, chart: bool = False
) -> Path:
    """``accuracy.json``: the point rows, then the interval rows (each keyed by dataset, model,
    horizon and level); ``accuracy.md``: a table of each, then the targets. With ``chart``, also
    ``accuracy.png`` drawn from the JSON's rows (:func:`benchmarks.charts.accuracy_chart`), shown
    in the markdown under the point table (off by default: tests need no matplotlib figure)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = report.results
    keys = ["dataset", "model", "horizon", "mse", "mae", "published_mse", "published_mae"]
    rows: list[dict[str, Any]] = [{**{k: asdict(r)[k] for k in keys}, **asdict(r)} for r in results]
    rows += [asdict(r) for r in report.intervals]
    (out_dir / "accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")
    drawn = None
    if chart and results:
        from benchmarks.charts import accuracy_chart

        drawn = accuracy_chart(rows, out_dir / "accuracy.png")

    def cell(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "# Accuracy benchmark",
        "",
        f"Protocol: `{config.dataset.name}`, look-back {config.lookback}, split {config.split.train}/"
        f"{config.split.validation}/{config.split.test} rows, standardised with training statistics; "
        "test MSE and MAE on that scale." + (f" Published: {config.published.source}." if config.published else ""),
        "",
        "| dataset | model | horizon | MSE | MAE | published MSE | published MAE | validation MSE | fit s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.dataset} | {r.model} | {r.horizon} | {cell(r.mse)} | {cell(r.mae)} | {cell(r.published_mse, 3)} | "
            f"{cell(r.published_mae, 3)} | {cell(r.validation_mse)} | {cell(r.fit_seconds, 1)} |"
        )
    if drawn is not None:
        lines += ["", f"![Test MSE and MAE per horizon: ours solid, published dashed]({drawn.name})"]
    if report.intervals and config.intervals is not None:
        spec = config.intervals
        peer = spec.mlforecast
        lines += [
            "",
            "## Prediction intervals",
            "",
            f"Ours: split-conformal half-widths per step from the validation split's errors of the model "
            f"fitted above, on the test split; {report.intervals[0].origins} test windows (every "
            f"{spec.origin_stride}), every step, standardised scale."
            + (
                f" {peer.model}: MLForecast ({peer.strategy}) with the same LightGBM parameters on the "
                f"same {config.lookback} lags, given train + validation, {peer.method} intervals, forecasting "
                "from the same test origins."
                if peer
                else ""
            ),
            "",
            "| dataset | model | horizon | level | coverage | width | interval score | point MSE | calibration "
            "windows | fit s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i in report.intervals:
            lines.append(
                f"| {i.dataset} | {i.model} | {i.horizon} | {i.level:g} | {i.coverage:.3f} | {i.width:.3f} | "
                f"{i.interval_score:.3f} | {i.point_mse:.4f} | {i.calibration_windows} | {cell(i.fit_seconds, 1)} |"
            )
    lines += ["", "## Targets", "", "| check | result | detail |", "|---|---|---|"]
    lines += [
        f"| {v.check} | {('pass' if v.passed else 'FAIL') if v.target else 'info: ' + ('yes' if v.passed else 'no')} "
        f"| {v.detail} |"
        for v in verdicts
    ]
    (out_dir / "accuracy.md").write_text("\n".join(lines) + "\n")
    return out_dir / "accuracy.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/benchmarks/ltsf_univariate.yaml"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--models", nargs="*", default=None, help="only these families")
    parser.add_argument(
        "--intervals-only",
        action="store_true",
        help="only the interval rows: their families at their horizon (with those point rows) and the peer",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = BenchmarkConfig.from_yaml(args.config)
    if args.intervals_only and config.intervals is None:
        parser.error(f"{args.config} has no intervals section")
    with logging_beside_progress():
        report = run(config, Settings(), args.models, intervals_only=args.intervals_only)
    verdicts = check_targets(report, config)
    path = write_report(report, verdicts, config, args.out, chart=True)
    print((args.out / "accuracy.md").read_text())
    print(f"wrote {path}" + (f" and {args.out / 'accuracy.png'}" if report.results else ""))
    return 0 if all(v.passed for v in verdicts if v.target) else 1


if __name__ == "__main__":
    sys.exit(main())
