"""Every DAG runs end to end with ``dag.test()`` (in-process, SQLite) on a generated dataset."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

from configs.run_plan import run_key
from tests.conftest import SYNTHETIC_END, PlatformEnv, synthetic_frame, write_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONF = {"training_window_end": SYNTHETIC_END.isoformat(), "n_trials": 2, "tuning_workers": 2, "reason": "test run"}


def _states(run) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}


@pytest.fixture(scope="module")
def retrained(
    tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, pushgateway: str
) -> Iterator[tuple[PlatformEnv, dict[str, str | None], str]]:
    with PlatformEnv(tmp_path_factory.mktemp("dags"), MLOPS_PUSHGATEWAY_URL=pushgateway) as env:
        run = env.dag("retrain_synthetic_forecaster").test(run_conf=CONF)
        yield env, _states(run), run.run_id


def test_retraining_runs_every_step_and_promotes(retrained) -> None:  # type: ignore[no-untyped-def]
    from model_registry.tracking import CHALLENGER, CHAMPION, client

    env, states, run_id = retrained
    assert states.pop("skip_promotion") == "skipped"
    assert set(states.values()) == {"success"}, states
    mlflow = client(env.settings())
    champion = mlflow.get_model_version_by_alias("synthetic_forecaster", CHAMPION)
    assert champion.version == mlflow.get_model_version_by_alias("synthetic_forecaster", CHALLENGER).version
    assert champion.tags["dag_run_id"] == run_id
    assert champion.tags["gate_champion_challenger"] == "passed"
    assert champion.tags["gate_drift"] == "passed"
    run = mlflow.get_run(champion.run_id)
    assert run.data.tags["dag_run_id"] == run_id
    assert {"backtest_mae", "baseline_mae", "drift_share"} <= set(run.data.metrics)
    # two tuning workers filled one study; the final model was trained with its best trial and logs it
    assert states["tune"] == "success"
    assert run.data.tags["tuning_study"] == f"synthetic-xgboost-{run_key(run_id)}"
    assert run.data.metrics["tuning_trials_complete"] + run.data.metrics.get("tuning_trials_pruned", 0) == 2


def test_retried_registration_and_promotion_change_nothing(retrained) -> None:  # type: ignore[no-untyped-def]
    from model_registry.registry import champion_version, promote_version, register_run_of
    from model_registry.tracking import client

    env, _, run_id = retrained
    settings = env.settings()
    before = champion_version(settings, "synthetic_forecaster")
    again = register_run_of(settings, "synthetic_forecaster", "dag_run_id", run_id)
    assert again.version == before
    assert len(client(settings).search_model_versions("name = 'synthetic_forecaster'")) == 1
    assert promote_version(settings, "synthetic_forecaster", again.version, "retry") == before
    assert champion_version(settings, "synthetic_forecaster") == before


def test_materialization_dag_is_idempotent(retrained) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = retrained
    dag = env.dag("materialize_synthetic_features")
    for _ in range(2):
        assert set(_states(dag.test()).values()) == {"success"}


def test_nightly_backtest_pushes_its_figures(retrained, pushgateway: str) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = retrained
    run = env.dag("nightly_backtest_synthetic").test()
    assert set(_states(run).values()) == {"success"}
    metrics = requests.get(f"{pushgateway}/metrics", timeout=5).text
    assert (
        'mlops_backtest_mae{dataset="synthetic",instance="",job="nightly_backtest",role="champion",version="1"}'
        in metrics
    )
    assert "mlops_backtest_error_ratio" in metrics
    assert 'mlops_backtest_last_run_timestamp_seconds{dataset="synthetic"' in metrics


def test_drift_monitor_pushes_drift_figures(retrained, pushgateway: str) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = retrained
    run = env.dag("drift_monitor_synthetic").test()
    assert set(_states(run).values()) == {"success"}
    metrics = requests.get(f"{pushgateway}/metrics", timeout=5).text
    assert 'mlops_drift_share{dataset="synthetic",instance="",job="drift_monitor",version="1"}' in metrics
    assert 'mlops_drift_window_rows{dataset="synthetic",instance="",job="drift_monitor",window="current"}' in metrics
    assert 'mlops_drift_feature_score{dataset="synthetic",feature="temp_lag_0"' in metrics


def test_corrupted_input_fails_at_validation_with_nothing_registered(tmp_path: Path, airflow_db: Path) -> None:
    bad = synthetic_frame()
    bad = bad.drop(index=range(200, 210)).reset_index(drop=True)  # a 10-hour gap
    with PlatformEnv(tmp_path) as env:
        write_dataset(env.datasets, frame=bad)
        run = env.dag("retrain_synthetic_forecaster").test(run_conf=CONF)
        states = _states(run)
        assert str(run.state) == "failed"
        assert states["validate"] == "failed"
        assert states["build_features"] == "upstream_failed"
        assert states["train_final"] == "upstream_failed"
        assert states["promote"] == "upstream_failed"
        assert not (env.home / "validated" / "synthetic" / f"ds={date(2024, 3, 31)}").exists()
        assert not list(env.home.glob("feature_repo/data/*.parquet"))
        from model_registry.tracking import client

        assert client(env.settings()).search_registered_models() == []
