"""The accuracy benchmark's runs: the platform's model families, unchanged, fitted on each series'
training windows (validation for early stopping), optionally tuned with the platform's sampler and
search space, and scored on the test windows; each fit's forecasts also feed the interval rows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.accuracy.intervals import IntervalResult, conformal_rows, mlforecast_rows
from benchmarks.accuracy.protocol import (
    BenchmarkConfig,
    Fitted,
    SplitSeries,
    Windows,
    make_windows,
    split_series,
    window_dataset,
)
from core.columns import movement_names
from core.dataset import DatasetConfig
from core.progress import progress, show_progress
from core.settings import Settings

log = logging.getLogger(__name__)


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
                    # Adaptive widths move with the source dataset's own consecutive lags, as its bundles' do.
                    moving = movement_names(dataset)
                    intervals += conformal_rows(series, family, fitted, validation, test, spec, moving)
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
