"""Tuning round by round: the rounds it keeps are the rounds a fit grows, a seed gives the same study,
pruned and early-stopped trials say so, and every trial is logged when it finishes."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from model_training import devices, forecasters
from tests.utils.data import training_frame, write_dataset

# Row and column sampling make the trees depend on XGBoost's random engine: the property under test.
SAMPLED = {"max_depth": 3, "learning_rate": 0.3, "subsample": 0.7, "colsample_bytree": 0.7}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetConfig, pd.DataFrame]:
    dataset = DatasetConfig.from_yaml(write_dataset(tmp_path_factory.mktemp("tuning")))
    return dataset, training_frame(dataset)


def with_tuning(dataset: DatasetConfig, **tuning: Any) -> DatasetConfig:
    return dataset.model_copy(update={"tuning": dataset.tuning.model_copy(update=tuning)})


def settings_in(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", training_device="cpu", _env_file=None)  # type: ignore[call-arg]


@pytest.mark.slow  # fits the backtest's folds three times over
def test_boosted_folds_grow_the_trees_a_fit_grows(synthetic) -> None:  # type: ignore[no-untyped-def]
    """The folds boost side by side, a few rounds each in turn; after n rounds each fold's error is
    the error of a model fitted with n_estimators=n, so the rounds a trial keeps are what the final
    fit trains. (Without seed_per_iteration the boosters would draw their row and column samples
    from one random engine in turns, and grow other trees.)"""
    from model_training.backtest import BoostedFolds, backtest

    dataset, frame = synthetic

    def make(params: dict[str, Any]) -> forecasters.Forecaster:
        return forecasters.create("xgboost", dataset, params, device=devices.CPU)

    folds = BoostedFolds(frame, dataset, lambda: make(SAMPLED))
    for _ in range(4):
        folds.boost(5)
    assert folds.errors.shape == (dataset.training.backtest.folds, 20)
    for rounds in (7, 20):
        fitted = backtest(frame, dataset, lambda rounds=rounds: make({**SAMPLED, "n_estimators": rounds}))  # type: ignore[misc]
        np.testing.assert_allclose(folds.errors[:, rounds - 1], [f.model["mae"] for f in fitted.folds], rtol=1e-6)


def test_a_family_without_rounds_is_refused(synthetic) -> None:  # type: ignore[no-untyped-def]
    from model_training.backtest import BoostedFolds
    from model_training.tuning import boosts_in_rounds

    dataset, frame = synthetic
    assert boosts_in_rounds("xgboost")
    assert not boosts_in_rounds("nlinear")
    with pytest.raises(TypeError, match="does not boost round by round"):
        BoostedFolds(frame, dataset, lambda: forecasters.create("nlinear", dataset, device=devices.CPU))


def run_study(settings: Settings, dataset: DatasetConfig, frame: pd.DataFrame, name: str, **kwargs: Any) -> Any:
    import optuna

    from model_training.tuning import tune_worker

    tune_worker(settings, dataset, frame, "xgboost", kwargs.pop("trials", 6), name, **kwargs)
    return optuna.load_study(study_name=name, storage=settings.study_storage)


@pytest.mark.slow  # two studies of six trials each
@pytest.mark.parametrize("rounds", [True, False], ids=["round-by-round", "fold-by-fold"])
def test_tuning_is_deterministic_for_a_seed(rounds: bool, synthetic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, frame = synthetic
    dataset = with_tuning(dataset, spaces={"xgboost": {**SPACE, "learning_rate": {"low": 0.05, "high": 0.5}}})
    settings = settings_in(tmp_path)
    studies = [run_study(settings, dataset, frame, f"seeded-{i}", rounds=rounds) for i in range(2)]

    def record(study: Any) -> list[tuple[Any, ...]]:
        return [
            (t.state, t.params, t.value, t.intermediate_values, t.user_attrs.get("n_estimators")) for t in study.trials
        ]

    assert record(studies[0]) == record(studies[1])
    assert len({str(t.params) for t in studies[0].trials}) == len(studies[0].trials), "trials explore"


SPACE = {
    "n_estimators": {"low": 10, "high": 120, "int": True},
    "max_depth": {"low": 2, "high": 4, "int": True},
    "subsample": {"low": 0.7, "high": 1.0},
}


@pytest.mark.slow  # a study whose trials are pruned and stopped early
def test_pruned_and_early_stopped_trials_are_recorded_as_such(synthetic, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A learning rate of 0.8 overfits within a few rounds (stopped early, its best rounds kept); one
    of 0.001 has barely moved after the warm-up and is pruned against it. The best trial's value is
    what a backtest of the parameters handed to training scores, and each trial is logged as it
    finishes, before the next one starts."""
    import optuna

    from model_training.backtest import backtest
    from model_training.tuning import WARMUP_ROUNDS, best_params

    dataset, frame = synthetic
    patience = 5
    space = {**SPACE, "learning_rate": {"choices": [0.8, 0.001]}}
    dataset = with_tuning(dataset, spaces={"xgboost": space}, early_stopping_rounds=patience)
    dataset = dataset.model_copy(
        update={"training": dataset.training.model_copy(update={"params": {"xgboost": {"learning_rate": 0.8}}})}
    )
    settings = settings_in(tmp_path)
    # When trial k's line is logged the study holds trials 0..k: trial k+1 has not started yet.
    held_at_line: dict[int, int] = {}

    class CountTrials(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if found := re.match(r"trial (\d+)\b", record.getMessage()):
                held = optuna.load_study(study_name="states", storage=settings.study_storage).trials
                held_at_line[int(found.group(1))] = len(held)

    counter = CountTrials()
    logging.getLogger("model_training.tuning").addHandler(counter)
    try:
        with caplog.at_level(logging.INFO, logger="model_training.tuning"):
            study = run_study(settings, dataset, frame, "states", trials=8)
    finally:
        logging.getLogger("model_training.tuning").removeHandler(counter)

    first = study.trials[0]  # the config's parameters, enqueued
    assert first.params["learning_rate"] == 0.8
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert first.user_attrs["stopped_early"] is True
    assert first.user_attrs["rounds_trained"] - first.user_attrs["n_estimators"] >= patience
    assert first.user_attrs["rounds_trained"] < SPACE["n_estimators"]["high"]
    slow = [t for t in study.trials if t.params["learning_rate"] == 0.001]
    assert slow, "the sampler tried the slow learning rate"
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in slow)
    assert all(t.last_step == WARMUP_ROUNDS == t.user_attrs["rounds_trained"] for t in slow)
    assert all("n_estimators" not in t.user_attrs for t in slow), "a pruned trial chose no rounds"

    chosen = best_params(settings, dataset, "xgboost", "states", expected_trials=8)
    assert chosen["n_estimators"] == study.best_trial.user_attrs["n_estimators"]
    scored = backtest(frame, dataset, lambda: forecasters.create("xgboost", dataset, chosen, device=devices.CPU))
    assert scored.mean("model", "mae") == pytest.approx(study.best_value, rel=1e-6)

    logged = {int(m.group(1)): r for r in caplog.records if (m := re.match(r"trial (\d+)\b", r.getMessage()))}
    assert sorted(logged) == [t.number for t in study.trials]
    for trial in study.trials:
        assert ("pruned after" in logged[trial.number].getMessage()) == (trial.state == optuna.trial.TrialState.PRUNED)
    assert held_at_line == {t.number: t.number + 1 for t in study.trials}, "each line logged as its trial ended"
