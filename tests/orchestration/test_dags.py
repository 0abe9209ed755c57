"""The DAG files: they import cleanly, on their own, and every DAG carries what operators need.

How fast each file parses is a benchmark's figure (``make bench-dags``, :mod:`benchmarks.dag_parse`),
measured against a floor in the same run: a time limit here would pass or fail with the machine's load.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.dag_parse import parse_once
from core.settings import PROJECT_ROOT

DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_no_import_errors_and_one_set_of_dags_per_dataset(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {
        dag_id
        for name in ("ett", "m4_hourly", "m4_weekly")  # configs/datasets/*.yaml
        for dag_id in (
            f"retrain_{name}_forecaster",
            f"materialize_{name}_features",
            f"nightly_backtest_{name}",
            f"drift_monitor_{name}",
            f"rollback_{name}_champion",
            f"ingest_{name}",
            f"forecast_{name}",
            f"score_{name}",
        )
    }


def test_every_dag_has_owner_retries_tags_and_docs(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert not dag.catchup, dag_id
        for task in dag.tasks:
            assert task.owner == "ml-platform", (dag_id, task.task_id)
            assert task.execution_timeout is not None, (dag_id, task.task_id)
        assert any(task.retries > 0 for task in dag.tasks), dag_id


def test_the_retry_delay_of_every_retried_task_is_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MLOPS_TASK_RETRY_DELAY_SECONDS`` reaches every DAG's retried tasks (Airflow doubles it per retry)."""
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag

    from core.settings import get_settings

    monkeypatch.setenv("MLOPS_TASK_RETRY_DELAY_SECONDS", "7")
    get_settings.cache_clear()
    try:
        dags = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    retried = [
        task for dag in dags.values() for task in dag.tasks if task.retries > 0 and task.retry_exponential_backoff
    ]
    assert {dag.dag_id.split("_")[0] for dag in dags.values()} >= {"ingest", "forecast", "score", "retrain"}
    assert retried
    assert {task.retry_delay for task in retried} == {timedelta(seconds=7)}


def test_every_task_says_what_it_does(dagbag) -> None:  # type: ignore[no-untyped-def]
    """The UI shows a task's doc: a TaskFlow task's docstring, an operator's ``doc_md``."""
    undocumented = [(d, t.task_id) for d, dag in dagbag.dags.items() for t in dag.tasks if not t.doc_md]
    assert undocumented == []


def test_every_typed_value_a_task_returns_can_be_read_back_from_xcom(dagbag) -> None:  # type: ignore[no-untyped-def]
    """XCom deserializes only allowed classes: every pydantic model a task returns (or holds in a
    list) is one of ``TASK_RESULTS``, which the DAG files allow."""
    import typing

    from pydantic import BaseModel

    from orchestration.dags import TASK_RESULTS

    returned: set[type] = set()
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            callable_ = getattr(task, "python_callable", None)
            if callable_ is None or not hasattr(callable_, "__globals__"):
                continue
            hint = typing.get_type_hints(callable_).get("return")
            for kind in (hint, *typing.get_args(hint)):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    returned.add(kind)
    assert returned, "no task returns a typed value"
    assert returned <= set(TASK_RESULTS), returned - set(TASK_RESULTS)


def test_schedules(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk import CronDataIntervalTimetable

    schedules = {dag_id: dag.schedule for dag_id, dag in dagbag.dags.items()}
    assert schedules["retrain_ett_forecaster"] is None
    assert schedules["materialize_ett_features"] == "@hourly"
    assert schedules["rollback_ett_champion"] is None
    daily = dagbag.dags["ingest_ett"]
    assert schedules["ingest_ett"] == CronDataIntervalTimetable("0 1 * * *", timezone="UTC")  # the config's
    assert (daily.start_date.date().isoformat(), daily.catchup) == ("2016-07-01", False)


def test_no_daily_run_is_scheduled_past_the_configs_end(tmp_path: Path) -> None:
    """``daily.end``: the scheduler starts no run for a later day (the newest day by the clock is
    years past a replayed source), while a run of the end day itself still runs its tasks."""
    import importlib.util
    from datetime import UTC, date, datetime, time, timedelta

    import yaml
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    from tests.utils.data import SYNTHETIC_END, write_dataset

    config = write_dataset(tmp_path / "dataset")
    raw = yaml.safe_load(config.read_text())
    spec = importlib.util.spec_from_file_location("daily_data_under_test", PROJECT_ROOT / "dags" / "daily_data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    unbounded = module.build("synthetic", config)
    raw["daily"]["end"] = SYNTHETIC_END.isoformat()
    config.write_text(yaml.safe_dump(raw))
    bounded = module.build("synthetic", config)

    def next_scheduled(dag) -> object:  # type: ignore[no-untyped-def]
        restriction = TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=dag.catchup)
        timetable = coerce_to_core_timetable(dag.timetable)  # the scheduler's
        return timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)

    assert unbounded.end_date is None
    assert next_scheduled(unbounded) is not None, "without an end the newest day by the clock is scheduled"
    assert next_scheduled(bounded) is None
    end_day_run = datetime.combine(SYNTHETIC_END + timedelta(days=1), time(1), tzinfo=UTC)  # its run, due at 01:00
    assert all(task.end_date is not None and end_day_run <= task.end_date for task in bounded.tasks)
    assert bounded.end_date.date() == date.fromordinal(SYNTHETIC_END.toordinal() + 1)


def test_the_daily_data_tells_its_consumers_through_assets(dagbag) -> None:  # type: ignore[no-untyped-def]
    """The daily data DAG's outlets are Asset objects (a string outlet emits nothing), and the DAGs that
    judge new data are scheduled on the asset it emits once a day is online, not on a clock."""
    from airflow.sdk import Asset

    daily = dagbag.dags["ingest_ett"]
    outlets = {task.task_id: task.outlets for task in daily.tasks if task.outlets}
    assert set(outlets) == {"validate", "materialize"}
    assert all(isinstance(asset, Asset) for assets in outlets.values() for asset in assets)
    [online] = outlets["materialize"]
    assert online.uri == "x-mlops://ett/online-features"
    for consumer in ("drift_monitor_ett", "nightly_backtest_ett", "forecast_ett"):
        schedule = dagbag.dags[consumer].schedule
        assert list(schedule) == [online], consumer
    # Scoring runs once the day's forecasts are stored (the day's data holds the actuals of earlier ones).
    [issue] = [task for task in dagbag.dags["forecast_ett"].tasks if task.outlets]
    assert list(dagbag.dags["score_ett"].schedule) == issue.outlets
    assert [asset.uri for asset in issue.outlets] == ["x-mlops://ett/forecasts"]


def test_retrain_form_is_a_json_schema(dagbag) -> None:  # type: ignore[no-untyped-def]
    params = dagbag.dags["retrain_ett_forecaster"].params
    schema = {name: params.get_param(name).schema for name in params}
    assert schema["model_family"]["enum"][:4] == ["xgboost", "lightgbm", "nlinear", "dlinear"]
    assert {"auto_ets", "auto_theta", "auto_arima", "naive"} <= set(schema["model_family"]["enum"])
    assert schema["n_trials"]["minimum"] == 0
    assert (schema["tuning_workers"]["minimum"], schema["tuning_workers"]["maximum"]) == (1, 16)
    assert schema["training_window_end"]["format"] == "date"
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        Param(5, **schema["n_trials"]).resolve(-1)
    with pytest.raises(ParamValidationError):
        Param("xgboost", **schema["model_family"]).resolve("rm -rf /")


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_each_file_parses_on_its_own_into_dags_without_import_errors(dag_file: Path) -> None:
    """Each file alone, in a fresh interpreter, as the DAG processor parses it: no file relies on
    another having been imported first."""
    parsed = parse_once(dag_file)
    assert parsed["errors"] == {}
    assert parsed["dags"], "no DAG found"


def test_dag_files_import_no_heavy_library() -> None:
    heavy = ("pandas", "numpy", "mlflow", "feast", "torch", "xgboost", "great_expectations", "evidently", "optuna")
    script = (
        "import sys, runpy\n"
        f"for f in {[str(p) for p in DAG_FILES]!r}: runpy.run_path(f)\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_drift_monitor_triggers_the_retraining_dag_of_its_dataset(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["drift_monitor_ett"]
    trigger = dag.get_task("trigger_retraining")
    assert trigger.trigger_dag_id == "retrain_ett_forecaster"
    assert trigger.skip_when_already_exists  # a retried check does not start a second retraining
    assert set(trigger.conf) == {"reason", "training_window_end", "holdout_start"}
    assert set(trigger.conf) <= set(dagbag.dags["retrain_ett_forecaster"].params)
    assert [t.task_id for t in dag.get_task("needs_retraining").downstream_list] == ["trigger_retraining"]


def test_rollback_form_needs_a_reason(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.dags["rollback_ett_champion"].params
    reason, version = params.get_param("reason").schema, params.get_param("to_version").schema
    with pytest.raises(ParamValidationError):
        Param(**reason).resolve("")
    with pytest.raises(ParamValidationError):
        Param(None, **version).resolve("1; DROP TABLE")
    assert Param(None, **version).resolve("7") == "7"
