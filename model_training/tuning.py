"""Hyperparameter tuning with Optuna: TPE, median pruning on per-fold scores, shared RDB storage.

The study lives in the settings' RDB storage under a name derived from the run, so a retried task
(or several tuning workers) continues the same study instead of starting a new one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from core.dataset import DatasetConfig
from core.progress import show_progress
from core.settings import Settings
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
    "lightgbm": {
        "n_estimators": {"low": 50, "high": 400, "int": True},
        "learning_rate": {"low": 0.02, "high": 0.2, "log": True},
        "num_leaves": {"low": 7, "high": 63, "int": True, "log": True},
        "min_child_samples": {"low": 5, "high": 100, "int": True, "log": True},
        "colsample_bytree": {"low": 0.3, "high": 1.0},
    },
    # Linear families: the paper's Adam recipe or the exact ridge solution (each ignores the
    # other's parameters, so TPE learns which one pays).
    "nlinear": {
        "solver": {"choices": ["adam", "ridge"]},
        "learning_rate": {"low": 0.0005, "high": 0.05, "log": True},
        "batch_size": {"choices": [16, 32, 64, 128]},
        "ridge_alpha": {"low": 0.01, "high": 100000.0, "log": True},
    },
    "dlinear": {
        "solver": {"choices": ["adam", "ridge"]},
        "learning_rate": {"low": 0.0005, "high": 0.05, "log": True},
        "batch_size": {"choices": [16, 32, 64, 128]},
        "kernel_size": {"choices": [13, 25, 49]},
        "ridge_alpha": {"low": 0.01, "high": 100000.0, "log": True},
    },
}


def search_space(dataset: DatasetConfig, family: str) -> dict[str, dict[str, Any]]:
    return dataset.tuning.spaces.get(family) or DEFAULT_SPACES.get(family, {})


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One point of a search space: ``{choices: [...]}``, or ``{low, high, log?, int?}``."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if "choices" in spec:
            params[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif spec.get("int"):
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def _fold_mean(trial: optuna.trial.FrozenTrial, steps: int) -> float | None:
    values = [trial.intermediate_values.get(step) for step in range(steps)]
    if any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / steps


class FoldMedianPruner(optuna.pruners.BasePruner):
    """Prune a trial whose mean error over its first k folds is worse than the median of the
    completed trials' mean over the same k folds.

    Optuna's MedianPruner suits learning curves: it compares a trial's best value over all its
    steps with the others' value at the current step. Backtest folds are not a curve (an easy fold
    keeps a trial's best value low for ever), so with folds it never prunes; here like is compared
    with like.
    """

    def __init__(self, n_startup_trials: int = 2, n_warmup_steps: int = 1):
        self.n_startup_trials, self.n_warmup_steps = n_startup_trials, n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        mine = _fold_mean(trial, step + 1)
        completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        others = [m for m in (_fold_mean(t, step + 1) for t in completed) if m is not None]
        if mine is None or len(others) < self.n_startup_trials:
            return False
        others.sort()
        middle = len(others) // 2
        median = others[middle] if len(others) % 2 else (others[middle - 1] + others[middle]) / 2
        return mine > median


def _study(settings: Settings, name: str, seed: int, pruning: bool = True, attempts: int = 5) -> Any:
    """Create or join the study. Workers that start together race to create the storage's tables
    and the study row; the loser sees an SQL error, retries and joins what the winner made."""
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if settings.study_storage.startswith("sqlite:///"):
        Path(settings.study_storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if pruning:
        pruner = FoldMedianPruner()
    for attempt in range(1, attempts + 1):
        try:
            return optuna.create_study(
                study_name=name,
                storage=settings.study_storage,
                direction="minimize",
                sampler=optuna.samplers.TPESampler(seed=seed),
                pruner=pruner,
                load_if_exists=True,
            )
        except (SQLAlchemyError, optuna.exceptions.DuplicatedStudyError) as exc:
            if attempt == attempts:
                raise
            log.info("joining study %s failed (%s): retry %d", name, type(exc).__name__, attempt)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _finished(study: Any) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())


def tune_worker(
    settings: Settings,
    dataset: DatasetConfig,
    training_set: pd.DataFrame,
    family: str,
    n_trials: int,
    name: str,
    worker: int = 0,
    pruning: bool = True,
) -> int:
    """One tuning worker: runs trials of the shared study until it holds ``n_trials`` finished ones.

    Any number of workers (processes, pods) may run this on the same study at once; each seeds its
    sampler with its index so they explore different points. Returns the trials this worker ran.
    """
    from model_training.devices import select

    base = dict(dataset.training.params.get(family, {}))
    space = search_space(dataset, family)
    if n_trials <= 0 or not space:
        log.info("no tuning for %s (trials=%d, space=%s): using configured parameters", family, n_trials, space)
        return 0
    device = select(settings.training_device)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        params = {**base, **suggest(trial, space)}

        def report(score: FoldScore) -> None:
            trial.report(score.model["mae"], step=score.fold.index)
            if trial.should_prune():
                raise optuna.TrialPruned()

        def make_model() -> forecasters.Forecaster:
            return forecasters.create(family, dataset, params, device=device)

        result = backtest(training_set, dataset, make_model, on_fold=report)
        return result.mean("model", "mae")

    study = _study(settings, name, seed=42 + worker, pruning=pruning)
    remaining = n_trials - _finished(study)
    if remaining <= 0:
        return 0
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    # Other workers finish trials too: stop once the study as a whole has enough.
    stop = optuna.study.MaxTrialsCallback(n_trials, states=finished_states)
    ran = 0

    def count(_: Any, __: Any) -> None:
        nonlocal ran
        ran += 1

    # A diverging trial (e.g. too high a learning rate) is recorded as failed; the study goes on.
    # Optuna's own bar counts this worker's trials, on a terminal only (core.progress's rule).
    study.optimize(
        objective,
        n_trials=remaining,
        callbacks=[stop, count],
        catch=(FloatingPointError,),
        show_progress_bar=show_progress(),
    )
    log.info("worker %d ran %d trials; study %s holds %d finished", worker, ran, name, _finished(study))
    return ran


def best_params(
    settings: Settings, dataset: DatasetConfig, family: str, name: str, expected_trials: int = 0
) -> dict[str, Any]:
    """The config's parameters with the study's best trial on top.

    With tuning off (``expected_trials`` 0, or no search space) the config's parameters alone. When
    trials were asked for but the study holds no completed one, the workers failed (a pod that died
    quietly also exits 0): that is an error, not a silent fall-back to untuned parameters.
    """
    base = dict(dataset.training.params.get(family, {}))
    tuned = expected_trials > 0 and bool(search_space(dataset, family))
    try:
        study = optuna.load_study(study_name=name, storage=settings.study_storage)
        completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    except KeyError:  # no such study
        completed = []
    if not completed:
        if tuned:
            raise RuntimeError(f"study {name!r} has no completed trial of the {expected_trials} asked for")
        return base
    return {**base, **study.best_params}


def study_summary(settings: Settings, name: str) -> dict[str, Any] | None:
    """What MLflow records of a study: trial counts by state, the best trial, parameter importances."""
    try:
        study = optuna.load_study(study_name=name, storage=settings.study_storage)
    except KeyError:
        return None
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary: dict[str, Any] = {"study": name, "trials": len(trials), "states": states}
    if completed:
        best = study.best_trial
        summary["best_trial"] = {"number": best.number, "value": best.value, "params": best.params}
    if len(completed) >= 2:
        try:
            summary["importances"] = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError) as exc:  # e.g. every completed trial has the same params
            log.info("no parameter importances for %s: %s", name, exc)
    summary["trial_list"] = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
            "seconds": t.duration.total_seconds() if t.duration else None,
        }
        for t in trials
    ]
    return summary


def write_best_params(
    settings: Settings, dataset: DatasetConfig, family: str, name: str, out: str, expected_trials: int = 0
) -> str:
    """The best parameters as JSON for the final training job, at ``out`` (a local path, written then
    renamed, or an ``s3://`` object)."""
    from core.objects import write_object

    params = best_params(settings, dataset, family, name, expected_trials)
    return write_object(out, json.dumps(params, indent=2, sort_keys=True).encode(), settings)
