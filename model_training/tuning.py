"""Hyperparameter tuning with Optuna: TPE, median pruning on per-fold scores, shared RDB storage.

The study lives in the settings' RDB storage under a name derived from the run, so a retried task
(or several tuning workers) continues the same study instead of starting a new one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from configs.dataset import DatasetConfig
from configs.settings import Settings
from model_training import forecasters
from model_training.backtest import FoldScore, backtest

log = logging.getLogger(__name__)

DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "xgboost": {
        "n_estimators": {"low": 50, "high": 300, "int": True},
        "max_depth": {"low": 3, "high": 8, "int": True},
        "learning_rate": {"low": 0.02, "high": 0.3, "log": True},
        "subsample": {"low": 0.6, "high": 1.0},
        "colsample_bytree": {"low": 0.5, "high": 1.0},
    },
}


def search_space(dataset: DatasetConfig, family: str) -> dict[str, dict[str, Any]]:
    return dataset.tuning.spaces.get(family) or DEFAULT_SPACES.get(family, {})


def _suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.get("int"):
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def tune(
    settings: Settings,
    dataset: DatasetConfig,
    training_set: pd.DataFrame,
    family: str,
    n_trials: int,
    study_name: str,
    seed: int = 42,
) -> dict[str, Any]:
    """Run up to ``n_trials`` more trials of the study; return the best parameters (config defaults
    merged in). With no search space or no trials, the config's parameters are returned as they are."""
    import optuna

    base = dict(dataset.training.params.get(family, {}))
    space = search_space(dataset, family)
    if n_trials <= 0 or not space:
        log.info("no tuning for %s (trials=%d, space=%s): using configured parameters", family, n_trials, space)
        return base

    def objective(trial: optuna.Trial) -> float:
        params = {**base, **_suggest(trial, space)}

        def report(score: FoldScore) -> None:
            trial.report(score.model["mae"], step=score.fold.index)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = backtest(training_set, dataset, lambda: forecasters.create(family, dataset, params), on_fold=report)
        return result.mean("model", "mae")

    study = optuna.create_study(
        study_name=study_name,
        storage=settings.study_storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        load_if_exists=True,
    )
    finished = [t for t in study.trials if t.state.is_finished()]
    remaining = max(n_trials - len(finished), 0)
    if remaining:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(objective, n_trials=remaining)
    best = {**base, **study.best_params}
    log.info("study %s: best MAE %.4f with %s", study_name, study.best_value, best)
    return best


def tune_to_file(
    settings: Settings,
    dataset: DatasetConfig,
    training_set_path: Path,
    family: str,
    n_trials: int,
    study_key: str,
    out: Path,
) -> Path:
    """Tune on a persisted training set and write the best parameters as JSON for the training job."""
    settings.home.mkdir(parents=True, exist_ok=True)
    params = tune(
        settings, dataset, pd.read_parquet(training_set_path), family, n_trials, f"{dataset.name}-{family}-{study_key}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(params, indent=2, sort_keys=True))
    return out
