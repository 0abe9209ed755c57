"""PostgreSQL restarted in the middle of a retraining run.

Debian's PostgreSQL holds Airflow's metadata database and the MLflow server's backend, as in the
compose stack. While the training task is logging its MLflow run, ``pg_ctl restart -m fast``
cuts every open connection and the server is gone for a moment. The run must then carry on (both
sides keep pooled connections and check them before use) or fail naming the database error, within
a bound; either way nothing half-written stays behind: every model version has a finished run and
the very files it was registered with, aliases name existing versions, the landing partition is
whole. A retry of the same DAG run (same run id, as clearing it in Airflow) succeeds and leaves one
set of outputs: one DAG run, one model version for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT, Settings
from simulation.stack import Postgres
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import PlatformEnv
from tests.utils.servers import free_port, server_process

DAG_ID = "retrain_synthetic_forecaster"
MODEL = "synthetic_forecaster"
LOGICAL_DATE = datetime(SYNTHETIC_END.year, SYNTHETIC_END.month, SYNTHETIC_END.day, tzinfo=UTC)
# Fixed, so that the retry gets the run id of the run it retries.
RUN_AFTER = datetime(2024, 4, 1, 6, tzinfo=UTC)
RUN_ID = f"manual__{RUN_AFTER.isoformat()}"
CONF = {"training_window_end": SYNTHETIC_END.isoformat(), "n_trials": 0, "reason": "postgres restart"}
# A run (one to four minutes here, by how busy the machine is) still going after this long is hung, not slow.
RUN_TIMEOUT = 600.0
# The first run and the retry, each within its limit, and the checks between and after them.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.heavy, pytest.mark.timeout(2 * RUN_TIMEOUT + 300)]
WATCHER = "restart-watcher"
FINISHED_TI_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}
# What a task's log says when it lost its database, as psycopg and PostgreSQL word it.
DATABASE_ERRORS = (
    "OperationalError",
    "terminating connection",
    "server closed the connection",
    "Connection refused",
    "the database system is shutting down",
    "the database system is starting up",
)
# What Airflow logs when a task's call of the execution API met a dead database connection. dag.test()
# then sets the task's state itself, so the run can still end in success: a resumed run has none.
AIRFLOW_DATABASE_FAILURES = ("Failed to report terminal task state", "'reason': 'Database error'")

# dag.test() in a process of its own, as a worker runs tasks: Airflow binds its database when it is
# first imported, and this process is bound to the session's SQLite one. run_dag.py has no run_after.
DRIVER = """
import json, os, sys
from datetime import datetime

sys.path.insert(0, sys.argv[1])
from run_dag import prepare_airflow

prepare_airflow()
from airflow.dag_processing.dagbag import DagBag

dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(sys.argv[2])
run = dag.test(
    run_conf=json.loads(sys.argv[3]),
    logical_date=datetime.fromisoformat(sys.argv[4]),
    run_after=datetime.fromisoformat(sys.argv[5]),
)
print(f"dag run {run.run_id}: {run.state}", flush=True)
sys.exit(0 if str(run.state) == "success" else 1)
"""


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A throwaway cluster under ``pg_ctl``, which restarts it on the same data directory and port;
    the session's ``postgres_url`` server is shared with other tests and must stay up."""
    cluster = Postgres(("airflow", "mlflow"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def mlflow_server(postgres: Postgres, tmp_path: Path) -> Iterator[str]:
    """An MLflow tracking server on ``postgres``, artifacts proxied to a local folder, as compose runs
    it but without logins: its basic-auth app checks a scrypt hash on every request (artifact files
    included), which makes the run several times slower, and the logins database sits behind the same
    kind of pooled, pre-pinged engine as the backend."""
    port = free_port()
    argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", postgres.url("mlflow"),
            "--artifacts-destination", (tmp_path / "mlflow-artifacts").as_uri(), "--serve-artifacts",
            "--workers", "1"]  # fmt: skip
    with server_process(argv, port, timeout=120, log=tmp_path / "mlflow-server.log"):
        yield f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Restart:
    began: datetime  # when pg_ctl was asked to restart
    back: datetime  # the new server's start time
    cut: dict[str, int]  # open connections per database at the restart
    training_run: str  # the MLflow run that was logging then


def start_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", DRIVER, str(PROJECT_ROOT / "infra" / "scripts"), DAG_ID,
            json.dumps(CONF), LOGICAL_DATE.isoformat(), RUN_AFTER.isoformat()]  # fmt: skip
    with log.open("wb") as output:
        return subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait(process: subprocess.Popen[bytes], log: Path, deadline: float) -> int:
    """The run's exit code; a run past ``deadline`` is killed (with its training processes) and fails the test."""
    try:
        return process.wait(timeout=max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"the DAG run hung for {RUN_TIMEOUT:.0f}s:\n{tail(log)}")


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def restart_while_training_logs(postgres: Postgres, process: subprocess.Popen[bytes], log: Path) -> Restart:
    """Restart the server once train_final runs and its MLflow run is open, i.e. between its writes."""
    import psycopg

    deadline = time.monotonic() + RUN_TIMEOUT
    with (
        psycopg.connect(postgres.conninfo("airflow"), autocommit=True, application_name=WATCHER) as airflow,
        psycopg.connect(postgres.conninfo("mlflow"), autocommit=True, application_name=WATCHER) as mlflow,
    ):
        while True:
            if process.poll() is not None:
                pytest.fail(f"the run ended before its training logged anything:\n{tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"train_final did not log an MLflow run within {RUN_TIMEOUT:.0f}s:\n{tail(log)}")
            try:
                task = airflow.execute(
                    "SELECT state FROM task_instance WHERE dag_id = %s AND task_id = 'train_final'", (DAG_ID,)
                ).fetchone()
            except psycopg.errors.UndefinedTable:  # Airflow's tables are still being created
                task = None
            logging = mlflow.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'").fetchall()
            if task is not None and task[0] == "running" and len(logging) == 1:
                break
            time.sleep(0.1)
    with psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as conn:
        counted = conn.execute(
            "SELECT datname, count(*) FROM pg_stat_activity WHERE datname IN ('airflow', 'mlflow')"
            " AND application_name <> %s GROUP BY datname",
            (WATCHER,),
        ).fetchall()
    began = datetime.now(UTC)
    postgres.restart()
    with psycopg.connect(postgres.conninfo("postgres")) as conn:
        back = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]  # type: ignore[index]
    return Restart(began=began, back=back, cut={str(name): int(n) for name, n in counted}, training_run=logging[0][0])


def airflow_runs(postgres: Postgres) -> tuple[list[tuple[str, str]], dict[str, tuple[str | None, Any]]]:
    """The DAG's runs (run id, state) and, per task of the newest, its state and end."""
    import psycopg

    with psycopg.connect(postgres.conninfo("airflow")) as conn:
        runs = conn.execute("SELECT run_id, state FROM dag_run WHERE dag_id = %s ORDER BY id", (DAG_ID,)).fetchall()
        tasks = conn.execute(
            "SELECT task_id, map_index, state, end_date FROM task_instance WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, runs[-1][0] if runs else ""),
        ).fetchall()
    return [(str(r), str(s)) for r, s in runs], {f"{t}[{m}]" if m >= 0 else t: (s, end) for t, m, s, end in tasks}


def assert_nothing_half_written(settings: Settings, env: PlatformEnv) -> dict[str, list[str]]:
    """Every version has a finished run and its registered files; aliases name versions; no run is
    left open; the landing partition holds the whole source. Returns the version numbers the gates
    judged per DAG run (a refit is not one of them)."""
    import pandas as pd

    from core.dataset import DatasetConfig
    from core.partitions import partition_path
    from model_registry.provenance import verified_copy
    from model_registry.registry import alias_version
    from model_registry.tracking import CHALLENGER, CHAMPION, PREVIOUS, client, experiment_id

    mlflow = client(settings)
    versions = mlflow.search_model_versions(f"name = '{MODEL}'")
    per_run: dict[str, list[str]] = {}
    for version in versions:
        assert version.status == "READY", version
        assert mlflow.get_run(str(version.run_id)).info.status == "FINISHED", version
        verified_copy(settings, MODEL, str(version.version))  # the files it was registered with, unchanged
        if "evaluated_version" not in version.tags:  # a run's refit is registered once its gates passed
            per_run.setdefault(version.tags["dag_run_id"], []).append(str(version.version))
    known = {str(v.version) for v in versions}
    judged = {v.tags["evaluated_version"] for v in versions if "evaluated_version" in v.tags}
    assert judged <= known, "every refit names a version the gates judged"
    for alias in (CHAMPION, CHALLENGER, PREVIOUS):
        named = alias_version(settings, MODEL, alias)
        assert named is None or named in known, (alias, named, known)
    open_runs = mlflow.search_runs([experiment_id(settings)], "attributes.status = 'RUNNING'")
    assert [r.info.run_id for r in open_runs] == []

    dataset = DatasetConfig.from_yaml(env.config)
    landed = pd.read_parquet(partition_path(settings.landing, dataset, SYNTHETIC_END))
    assert len(landed) == len(pd.read_csv(env.datasets / "series.csv"))
    assert list(settings.landing.rglob("*.tmp")) == []
    return per_run


def test_a_postgres_restart_mid_run_leaves_nothing_half_written_and_a_retry_succeeds(
    tmp_path: Path, postgres: Postgres, mlflow_server: str
) -> None:
    from model_registry.registry import alias_version
    from model_registry.tracking import CHALLENGER, CHAMPION, client

    started = time.monotonic()
    with PlatformEnv(tmp_path, MLOPS_MLFLOW_TRACKING_URI=mlflow_server) as env:
        settings = env.settings()
        run_env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url("airflow"),
            # Airflow would derive an asyncpg URL, a driver this venv lacks (compose's image has it).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": postgres.url("airflow"),
        }

        # The run, with the restart in its training task.
        first_log = tmp_path / "first-run.log"
        first = start_run(run_env, first_log)
        restart = restart_while_training_logs(postgres, first, first_log)
        code = wait(first, first_log, started + RUN_TIMEOUT)
        print(f"first run ended after {time.monotonic() - started:.0f}s; restart at {restart.began:%H:%M:%S.%f}, "
              f"back at {restart.back:%H:%M:%S.%f}, connections cut {restart.cut}")  # fmt: skip
        assert restart.back > restart.began
        # Both sides held connections that the restart cut; they had to make new ones.
        assert restart.cut.get("airflow", 0) > 0, restart.cut
        assert restart.cut.get("mlflow", 0) > 0, restart.cut

        runs, tasks = airflow_runs(postgres)
        assert [r for r, _ in runs] == [RUN_ID], runs
        state = runs[0][1]
        print(f"first run: {state} (exit code {code}); tasks: {dict((t, s) for t, (s, _) in tasks.items())}")
        assert state in ("success", "failed"), f"the run did not end cleanly: {state}\n{tail(first_log)}"
        assert code == (0 if state == "success" else 1), tail(first_log)
        assert {t: s for t, (s, _) in tasks.items() if s not in FINISHED_TI_STATES} == {}
        # The training task was still running when the server came back.
        assert tasks["train_final"][1] > restart.back
        log = first_log.read_text(errors="replace")
        if state == "success":
            assert [line for line in log.splitlines() if any(e in line for e in AIRFLOW_DATABASE_FAILURES)] == []
        else:
            found = [e for e in DATABASE_ERRORS if e in log]
            print(f"first run failed with {found}")
            assert found, f"a failed run must name the database error:\n{tail(first_log)}"

        mlflow = client(settings)
        training = mlflow.get_run(restart.training_run)
        assert training.info.start_time < restart.began.timestamp() * 1000
        if state == "success":
            assert training.info.status == "FINISHED"
            # The run went on writing after the restart.
            assert training.info.end_time > restart.back.timestamp() * 1000
        before_retry = assert_nothing_half_written(settings, env)
        if state == "success":
            assert before_retry == {RUN_ID: [before_retry[RUN_ID][0]]}
        else:
            assert set(before_retry) <= {RUN_ID}
            assert all(len(v) == 1 for v in before_retry.values())

        # The retry: the same DAG run again, on the restarted server.
        second_log = tmp_path / "retry.log"
        retry_started = time.monotonic()
        assert wait(start_run(run_env, second_log), second_log, retry_started + RUN_TIMEOUT) == 0, tail(second_log)
        print(f"retry ran {time.monotonic() - retry_started:.0f}s")
        runs, tasks = airflow_runs(postgres)
        assert runs == [(RUN_ID, "success")]
        states = {t: s for t, (s, _) in tasks.items()}
        assert {states.pop("promote"), states.pop("skip_promotion")} == {"skipped", "success"}
        assert states.pop("evaluate_candidate") == "skipped", "no candidates to evaluate outside a selection"
        assert set(states.values()) == {"success"}, states

        # One set of outputs: one version for the run, the one the first attempt registered if it did.
        after_retry = assert_nothing_half_written(settings, env)
        assert list(after_retry) == [RUN_ID]
        (version,) = after_retry[RUN_ID]
        if before_retry:
            assert before_retry[RUN_ID] == [version]
        assert alias_version(settings, MODEL, CHALLENGER) == version
        refit = client(settings).get_model_version(MODEL, version).tags["refit_version"]
        assert alias_version(settings, MODEL, CHAMPION) == refit, "its refit on every labelled row serves"

        # Nothing the first training logged across the restart was lost: the retry's training
        # (same data, same code) logged the same metrics, params and files.
        if training.info.status == "FINISHED":
            retried = [
                r
                for r in mlflow.search_runs(
                    [training.info.experiment_id],
                    f"tags.dag_run_id = '{RUN_ID}' and attributes.status = 'FINISHED'",
                    order_by=["start_time ASC"],
                )
                if r.info.run_id != training.info.run_id
            ][-1]
            for key in retried.data.metrics:
                first_history = mlflow.get_metric_history(training.info.run_id, key)
                assert len(first_history) == len(mlflow.get_metric_history(retried.info.run_id, key)), key
            assert {k: training.data.params.get(k) for k in retried.data.params} == retried.data.params
            files = {f.path for f in mlflow.list_artifacts(retried.info.run_id)}
            assert files <= {f.path for f in mlflow.list_artifacts(training.info.run_id)}
            assert files
    print(f"first run and retry took {time.monotonic() - started:.0f}s")
