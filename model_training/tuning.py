"""Hyperparameter tuning with Optuna: TPE, pruning, shared RDB storage.

Two strategies, by family:

- A family that boosts round by round (:class:`~model_training.forecasters.Boosted`: XGBoost) trains
  a trial's backtest folds side by side, reports the folds' mean MAE every few rounds to Optuna's
  successive-halving pruner (rungs at 30, 90 and 270 rounds: a trial goes on past a rung only among
  the best third of the trials that reached it), stops once that mean has not improved for
  ``tuning.early_stopping_rounds`` rounds and keeps the number of rounds where it was lowest
  (``n_estimators`` of the search space is the cap, not a sampled value). The config's own
  parameters are the first trial, so the others are pruned against a good fit from the start.
- Any other family fits the folds one after another and reports each fold's MAE to
  :class:`FoldMedianPruner`.

The study lives in the settings' RDB storage under a name derived from the run, so a retried task
(or several tuning workers) continues the same study instead of starting a new one. Each finished
trial is logged as it finishes (value, rounds, pruned or not).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd

from core.dataset import DatasetConfig
from core.progress import logging_beside_progress, show_progress
from core.settings import Settings
from model_training import forecasters
from model_training.backtest import BoostedFolds, FoldScore, backtest

if TYPE_CHECKING:
    from model_training.devices import Device

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


# Rounds between two reports of a boosted trial to the pruner, and the rounds before it may prune.
REPORT_EVERY = 10
WARMUP_ROUNDS = 30


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


def boosts_in_rounds(family: str) -> bool:
    """Whether ``family`` is tuned round by round (see the module's docstring)."""
    return issubclass(forecasters.family_class(family), forecasters.Boosted)


def _pruner(pruning: bool, rounds: bool) -> optuna.pruners.BasePruner:
    if not pruning:
        return optuna.pruners.NopPruner()
    if rounds:
        # Steps are rounds and each value the folds' best mean so far: a learning curve, compared
        # with the other trials' at the same rungs.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=WARMUP_ROUNDS, reduction_factor=3)
    return FoldMedianPruner()


def _study(settings: Settings, name: str, seed: int, pruner: optuna.pruners.BasePruner, attempts: int = 5) -> Any:
    """Create or join the study. Workers that start together race to create the storage's tables
    and the study row; the loser sees an SQL error, retries and joins what the winner made."""
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if settings.study_storage.startswith("sqlite:///"):
        Path(settings.study_storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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


def _boost_folds(trial: optuna.Trial, folds: BoostedFolds, cap: int, patience: int) -> float:
    """Boost a trial's folds side by side up to ``cap`` rounds: prune on their mean MAE, stop once it
    has not improved for ``patience`` rounds, and record the rounds where it was lowest."""
    stopped = False
    while folds.rounds < cap:
        folds.boost(min(REPORT_EVERY, cap - folds.rounds))
        mean = folds.mean()
        trial.report(float(mean.min()), step=folds.rounds)
        trial.set_user_attr("rounds_trained", folds.rounds)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after {folds.rounds} rounds")
        if folds.rounds - (int(mean.argmin()) + 1) >= patience:
            stopped = True
            # Competing at the rungs it did not reach with its best (more rounds could only lower
            # it): else a slow learner reaching a later rung would meet no one there.
            trial.report(float(mean.min()), step=cap)
            trial.should_prune()  # records the rungs; its verdict no longer matters
            break
    mean = folds.mean()
    best = int(mean.argmin())
    trial.set_user_attr("n_estimators", best + 1)
    trial.set_user_attr("stopped_early", stopped)
    trial.set_user_attr("fold_mae", [float(v) for v in folds.errors[:, best]])
    return float(mean[best])


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial, as it finishes: the task log and the terminal follow the study."""
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    attrs = trial.user_attrs
    if trial.state == optuna.trial.TrialState.COMPLETE:
        rounds = ""
        if "n_estimators" in attrs:
            stop = f", stopped early at {attrs['rounds_trained']}" if attrs.get("stopped_early") else ""
            rounds = f" at {attrs['n_estimators']} rounds{stop}"
        best = study.best_trial
        log.info(
            "trial %d: MAE %.4f%s in %.1fs; best %.4f (trial %d)",
            trial.number, trial.value, rounds, seconds, best.value, best.number,
        )  # fmt: skip
    elif trial.state == optuna.trial.TrialState.PRUNED and trial.last_step is not None:
        where = f"{trial.last_step} rounds" if "rounds_trained" in attrs else f"fold {trial.last_step}"
        log.info(
            "trial %d pruned after %s (MAE %.4f so far) in %.1fs",
            trial.number, where, trial.intermediate_values[trial.last_step], seconds,
        )  # fmt: skip
    else:
        log.info("trial %d %s in %.1fs", trial.number, trial.state.name.lower(), seconds)


def tune_worker(
    settings: Settings,
    dataset: DatasetConfig,
    training_set: pd.DataFrame,
    family: str,
    n_trials: int,
    name: str,
    worker: int = 0,
    pruning: bool = True,
    rounds: bool | None = None,
    timeout: float | None = None,
) -> int:
    """One tuning worker: runs trials of the shared study until it holds ``n_trials`` finished ones
    (or, with ``timeout``, until that many seconds have passed and the running trial ends).

    Any number of workers (processes, pods) may run this on the same study at once; each seeds its
    sampler with its index so they explore different points. ``rounds``: tune round by round (the
    default for a family that boosts so) or fold by fold; see the module's docstring. Returns the
    trials this worker ran.
    """
    from model_training.devices import training_device

    base = dict(dataset.training.params.get(family, {}))
    space = search_space(dataset, family)
    if n_trials <= 0 or not space:
        log.info("no tuning for %s (trials=%d, space=%s): using configured parameters", family, n_trials, space)
        return 0
    device = training_device(settings)
    rounds = boosts_in_rounds(family) if rounds is None else rounds
    cap = int(space.get("n_estimators", {}).get("high") or base.get("n_estimators") or 0)
    if rounds and cap <= 0:
        raise ValueError(f"tuning {family} round by round needs n_estimators' high in its search space")
    sampled = {k: v for k, v in space.items() if not (rounds and k == "n_estimators")}
    study = _study(settings, name, seed=42 + worker, pruner=_pruner(pruning, rounds))
    if rounds and worker == 0 and not study.get_trials(deepcopy=False):
        # The config's parameters first: a good fit from the start for the pruner to compare with.
        configured = {k: v for k, v in base.items() if k in sampled}
        if configured:
            study.enqueue_trial(configured, skip_if_exists=True)
    remaining = n_trials - _finished(study)
    if remaining <= 0:
        return 0
    log.info(
        "worker %d tunes %s %s (%d trials to go) on study %s",
        worker, family, f"round by round (at most {cap})" if rounds else "fold by fold", remaining, name,
    )  # fmt: skip
    objective = _objective(dataset, training_set, family, base, sampled, device, worker, cap if rounds else None)
    ran = _optimize(study, objective, n_trials, remaining, timeout)
    log.info("worker %d ran %d trials; study %s holds %d finished", worker, ran, name, _finished(study))
    return ran


def _objective(
    dataset: DatasetConfig,
    training_set: pd.DataFrame,
    family: str,
    base: dict[str, Any],
    sampled: dict[str, dict[str, Any]],
    device: Device,
    worker: int,
    cap: int | None,
) -> Callable[[optuna.Trial], float]:
    """A trial's backtest MAE of the config's parameters with a point of ``sampled`` on top: boosted
    round by round up to ``cap`` rounds, or (``cap`` None) fold by fold, reporting to the pruner."""
    patience = dataset.tuning.early_stopping_rounds

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        params = {**base, **suggest(trial, sampled)}

        def make_model() -> forecasters.Forecaster:
            return forecasters.create(family, dataset, params, device=device)

        if cap is not None:
            return _boost_folds(trial, BoostedFolds(training_set, dataset, make_model), cap, patience)

        def report(score: FoldScore) -> None:
            trial.report(score.model["mae"], step=score.fold.index)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {score.fold.index}")

        return backtest(training_set, dataset, make_model, on_fold=report).mean("model", "mae")

    return objective


def _optimize(
    study: Any, objective: Callable[[optuna.Trial], float], n_trials: int, remaining: int, timeout: float | None
) -> int:
    """Run trials until the study as a whole holds ``n_trials`` finished ones (other workers finish
    trials too), at most ``remaining`` here; returns the trials this worker ran."""
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    stop = optuna.study.MaxTrialsCallback(n_trials, states=finished_states)
    ran = 0

    def count(_: Any, __: Any) -> None:
        nonlocal ran
        ran += 1

    # A diverging trial (e.g. too high a learning rate) is recorded as failed; the study goes on.
    # Optuna's own bar counts this worker's trials, on a terminal only (core.progress's rule), with
    # each trial's line printed above it.
    with logging_beside_progress():
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout,
            callbacks=[stop, count, _log_trial],
            catch=(FloatingPointError,),
            show_progress_bar=show_progress(),
        )
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
    # A trial tuned round by round chose its number of rounds on the folds instead of sampling it.
    chosen = {k: v for k, v in study.best_trial.user_attrs.items() if k == "n_estimators"}
    return {**base, **study.best_params, **chosen}


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
        summary["best_trial"] = {
            "number": best.number, "value": best.value, "params": best.params, "user_attrs": best.user_attrs,
        }  # fmt: skip
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
            "user_attrs": t.user_attrs,
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
