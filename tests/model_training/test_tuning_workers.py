"""Optuna workers share one study through the settings' RDB storage: SQLite and a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings
from model_registry import tracking
from model_training.tuning import REPORT_EVERY
from tests.utils.data import training_frame, write_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TRIALS = 6


@pytest.fixture
def training_set(tmp_path: Path) -> tuple[Path, Path]:
    config = write_dataset(tmp_path / "dataset")
    path = tmp_path / "training_set.parquet"
    training_frame(DatasetConfig.from_yaml(config)).to_parquet(path, index=False)
    return config, path


def run_two_workers(storage: str, config: Path, rows: Path, home: Path, study: str) -> list[str]:
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_OPTUNA_STORAGE": storage, "MLOPS_TRAINING_DEVICE": "cpu"}
    # One core per worker, as one pod each would have: two OpenMP pools spinning on two cores crawl.
    env["OMP_NUM_THREADS"] = "1"
    argv = [sys.executable, "-m", "model_training", "tune", "--dataset", str(config), "--model", "xgboost"]
    argv += ["--training-set", str(rows), "--trials", str(TRIALS), "--study", study]
    workers = [
        subprocess.Popen([*argv, "--worker", str(i)], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    return outputs


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_fill_one_study(backend: str, training_set, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    import optuna

    config, rows = training_set
    storage = f"sqlite:///{tmp_path / 'optuna.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    study_name = f"workers-{backend}-{tmp_path.name}"
    run_two_workers(storage, config, rows, tmp_path / "home", study_name)

    study = optuna.load_study(study_name=study_name, storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    # Workers stop once the study holds enough; a trial already running elsewhere may add one each.
    assert TRIALS <= len(finished) <= TRIALS + 1
    assert {t.user_attrs["worker"] for t in finished} == {0, 1}, "both workers ran trials of the same study"
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete
    # XGBoost is tuned round by round: the pruner is fed the folds' mean MAE every few rounds (and
    # a trial that stopped early its best at the cap of rounds)
    for t in complete:
        steps = range(REPORT_EVERY, t.user_attrs["rounds_trained"] + 1, REPORT_EVERY)
        assert sorted(t.intermediate_values) == [*steps, *([300] if t.user_attrs["stopped_early"] else [])]
    assert len({tuple(sorted(t.params.items())) for t in finished}) == len(finished), "workers explore different points"

    # A rerun of a worker (a retried task) finds the study complete and adds nothing.
    outputs = run_two_workers(storage, config, rows, tmp_path / "home", study_name)
    assert all("ran 0 trials" in out for out in outputs)


def test_best_params_retrain_and_the_study_is_logged(training_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    from model_training.train import train
    from model_training.tuning import best_params, tune_worker, write_best_params

    config, rows = training_set
    settings = Settings(home=tmp_path / "home", dataset_config=config, training_device="cpu", _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    frame = pd.read_parquet(rows)
    assert tune_worker(settings, dataset, frame, "lightgbm", 4, "s1") == 4
    assert tune_worker(settings, dataset, frame, "lightgbm", 4, "s1") == 0, "a finished study runs nothing more"
    params = best_params(settings, dataset, "lightgbm", "s1")
    assert {"n_estimators", "learning_rate", "num_leaves"} <= set(params)
    out = Path(write_best_params(settings, dataset, "lightgbm", "s1", str(tmp_path / "params.json")))
    # no study (tuning off): the config's parameters as they are
    assert best_params(settings, dataset, "lightgbm", "missing") == dataset.training.params.get("lightgbm", {})
    # trials asked for but none completed (workers died): an error, not untuned parameters
    with pytest.raises(RuntimeError, match="no completed trial"):
        best_params(settings, dataset, "lightgbm", "missing", expected_trials=4)

    import json

    outcome = train(
        settings, dataset, date_of(frame), "lightgbm", json.loads(out.read_text()), training_set=str(rows), study="s1"
    )
    run = mlflow.get_run(outcome.run_id)
    assert run.data.tags["tuning_study"] == "s1"
    assert run.data.metrics["tuning_trials_complete"] + run.data.metrics.get("tuning_trials_pruned", 0) == 4
    assert "tuning_best_value" in run.data.metrics
    assert any(k.startswith("tuning_importance_") for k in run.data.metrics)
    assert int(run.data.params["param_num_leaves"]) == params["num_leaves"], "the best params were retrained"
    summary = mlflow.artifacts.load_dict(f"runs:/{outcome.run_id}/tuning/study.json")
    assert len(summary["trial_list"]) == 4


def date_of(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    return frame[EVENT_TIMESTAMP].max().date()
