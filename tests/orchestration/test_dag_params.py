"""DAG run conf is untrusted input: Airflow's own trigger-time validation (the serialized DAG's
params, deep-merged with the conf and validated, as ``create_dagrun`` does) must refuse what the
forms do not allow, and no conf value may reach a shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT
from tests.utils.platform import a_plan

LONG = "x" * 501


@pytest.fixture(scope="module")
def source_dags() -> dict[str, Any]:
    """Every DAG as its file defines it."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return dict(bag.dags)


@pytest.fixture(scope="module")
def dags(source_dags: dict[str, Any]) -> dict[str, Any]:
    """Every DAG as the scheduler and the REST API hold it: serialized, then read back."""
    from airflow.serialization.serialized_objects import DagSerialization

    return {dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag)) for dag_id, dag in source_dags.items()}


def trigger(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """What Airflow runs on a trigger before a DAG run exists (SerializedDAG.create_dagrun)."""
    return dict(dag.params.deep_merge(conf).validate())


def test_every_form_field_has_a_type_and_bounds(dags: dict[str, Any]) -> None:
    fields = 0
    for dag_id, dag in dags.items():
        for name in dag.params:
            schema = dag.params.get_param(name).schema
            types = set(schema["type"] if isinstance(schema["type"], list) else [schema["type"]]) - {"null"}
            assert len(types) == 1, (dag_id, name, schema)
            kind = types.pop()
            if kind == "integer":
                assert {"minimum", "maximum"} <= set(schema), (dag_id, name, schema)
            elif kind == "string":
                assert "enum" in schema or "format" in schema or "maxLength" in schema, (dag_id, name, schema)
            else:
                assert kind == "boolean", (dag_id, name, schema)
            fields += 1
    retraining = [dag_id for dag_id in dags if dag_id.startswith("retrain_")]
    assert retraining, "a retraining DAG per dataset"
    assert fields == 10 * len(retraining), "the retraining form's fields, the other DAGs take none"


GOOD: dict[str, list[dict[str, Any]]] = {
    "retrain_ett_forecaster": [
        {},
        {"model_family": "dlinear", "horizon": 48, "n_trials": 20, "tuning_workers": 4},
        {"training_window_end": "2018-06-26", "force_promote": True, "reason": "monthly refresh (ticket #12)"},
        {"horizon": None, "training_window_end": None},
        {"training_window_end": "2018-06-26", "holdout_start": "2018-06-22", "reason": "drift monitor: ..."},
        {"holdout_start": None},
        {"reason": None},
    ],
    "rollback_ett_champion": [{"reason": "worse forecasts"}, {"reason": "bad deploy", "to_version": "12"}],
    "materialize_ett_features": [{}],
    "nightly_backtest_ett": [{}],
    "drift_monitor_ett": [{}],
    "ingest_ett": [{}],
    "forecast_ett": [{}],
    "score_ett": [{}],
}

BAD: dict[str, list[dict[str, Any]]] = {
    "retrain_ett_forecaster": [
        {"model_family": "rm -rf /"},
        {"model_family": "XGBoost"},
        {"horizon": 0},
        {"horizon": 10_001},
        {"horizon": "24"},
        {"horizon": 1.5},
        {"n_trials": -1},
        {"n_trials": 501},
        {"tuning_workers": 0},
        {"tuning_workers": 17},
        {"training_window_end": "2018-13-40"},
        {"training_window_end": "2018-06-26T00:00:00"},
        {"training_window_end": "2018-06-26; rm -rf /"},
        {"training_window_end": "../../etc/passwd"},
        {"training_window_end": 20180626},
        {"holdout_start": "2018-06-22; rm -rf /"},
        {"holdout_start": "yesterday"},
        {"force_promote": "yes"},
        {"reason": LONG},
        {"reason": "ok\n2024-01-01 INFO promoted by admin"},
        {"reason": "\x1b[2Jcleared"},
    ],
    "rollback_ett_champion": [
        {},
        {"reason": ""},
        {"reason": "ab"},
        {"reason": LONG},
        {"reason": "fine\nforged line"},
        {"reason": "ok", "to_version": "0"},
        {"reason": "ok", "to_version": "1; DROP TABLE model_versions"},
        {"reason": "ok", "to_version": "7\n"},
        {"reason": "ok", "to_version": "1234567890"},
        {"reason": "ok", "to_version": 7},
        {"reason": "ok", "to_version": "../1"},
    ],
}


@pytest.mark.parametrize("dag_id", sorted(GOOD))
def test_defaults_and_sensible_values_pass(dags: dict[str, Any], dag_id: str) -> None:
    for conf in GOOD[dag_id]:
        resolved = trigger(dags[dag_id], conf)
        assert {k: resolved[k] for k in conf} == conf


@pytest.mark.parametrize(("dag_id", "index"), [(d, i) for d in sorted(BAD) for i in range(len(BAD[d]))])
def test_bad_conf_is_refused_before_a_run_exists(dags: dict[str, Any], dag_id: str, index: int) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="Invalid input for param"):
        trigger(dags[dag_id], BAD[dag_id][index])


def test_the_drift_monitors_trigger_fits_the_retraining_form(dags: dict[str, Any], source_dags: dict[str, Any]) -> None:
    """The conf the drift monitor sends, rendered with the values it produces, passes the form it targets."""
    trigger_task = source_dags["drift_monitor_ett"].get_task("trigger_retraining")
    assert set(trigger_task.conf) == {"reason", "training_window_end", "holdout_start"}
    reason = (
        "drift monitor: drift share above 0.50 on 3 consecutive days of new data up to 2018-06-26 "
        "(champion v4; ETTh1 0.62, ETTh2 0.71)"
    )
    conf = {"reason": reason, "training_window_end": "2018-06-25", "holdout_start": "2018-06-23"}
    trigger(dags["retrain_ett_forecaster"], conf)


def test_no_conf_value_reaches_a_shell(source_dags: dict[str, Any], tmp_path: Path) -> None:
    """Training runs as an argument list (never a shell string) that the plan builds from the form's
    validated values, one value per argument; no task is a shell command."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    from orchestration.launch import run_training_cli

    for dag_id, dag in source_dags.items():
        for task in dag.tasks:
            assert not hasattr(task, "bash_command"), (dag_id, task.task_id)
    train = source_dags["retrain_ett_forecaster"].get_task("train_final")
    assert train.python_callable is run_training_cli
    [argv] = train.op_args
    assert isinstance(argv, XComArg)
    assert argv.operator.task_id == "train_command"
    with pytest.raises(TypeError, match="never a shell string"):
        run_training_cli("train --model xgboost")  # type: ignore[arg-type]
    plan = a_plan(tmp_path / "a config with spaces; rm -rf.yaml", family="lightgbm", reason="x; rm -rf /")
    command = plan.train_command("rows.parquet", "params.json", plan.dataset_config)
    assert all(isinstance(arg, str) for arg in command)
    assert command[command.index("--dataset") + 1] == str(tmp_path / "a config with spaces; rm -rf.yaml")
    assert "x; rm -rf /" not in " ".join(command), "the free-text reason never reaches the command"


def test_scheduled_dags_take_no_conf(dags: dict[str, Any]) -> None:
    """A DAG without a form ignores any conf: its tasks never read one."""
    for dag_id in (
        "materialize_ett_features",
        "nightly_backtest_ett",
        "drift_monitor_ett",
        "ingest_ett",
        "forecast_ett",
        "score_ett",
    ):
        assert len(dags[dag_id].params) == 0, dag_id
    for path in sorted((PROJECT_ROOT / "dags").glob("*.py")):
        assert "dag_run.conf" not in path.read_text(), path.name


def test_the_retraining_forms_defaults_train_on_data_that_exists(dags: dict[str, Any]) -> None:
    """A run triggered with the form untouched trains up to the newest day of a source that no longer
    grows (ETT ends in 2018), not up to today, where the freshness check would fail."""
    from core.dataset import DatasetConfig
    from tests.utils.data import ETT_CONFIG

    history_end = DatasetConfig.from_yaml(ETT_CONFIG).daily.history_end
    assert history_end is not None
    resolved = trigger(dags["retrain_ett_forecaster"], {})
    assert resolved["training_window_end"] == history_end.isoformat()
    assert resolved["reason"] is None  # may stay empty: the form's Trigger button needs nothing typed
    described = [dags["retrain_ett_forecaster"].params.get_param(name).description for name in resolved]
    assert all(described), "every field says what it does under its title"
