"""The scheduler killed mid-task, with a real Airflow: ``airflow api-server``, ``dag-processor`` and
``scheduler`` (LocalExecutor, whose task processes are the scheduler's children) run the daily data
DAG of a day. While a task runs, the scheduler's whole process group gets SIGKILL: the task dies with
it. A new scheduler finds the dead scheduler's task orphaned, fails that try, and Airflow's retry runs
it again; the run ends in success with the day landed and validated once, and no partial file left."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.settings import PROJECT_ROOT
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import PlatformEnv
from tests.utils.servers import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.heavy, pytest.mark.timeout(1800)]

DAG_ID = "ingest_synthetic"
# A backfill of SYNTHETIC_END (a manual run's data interval would end now, not on that day).
DAY_START = datetime.combine(SYNTHETIC_END, datetime.min.time(), tzinfo=UTC)


class Airflow:
    """Airflow's components as processes of their own, on one SQLite metadata database."""

    def __init__(self, root: Path, platform: PlatformEnv):
        self.root, self.home = root, root / "airflow"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
        env.update(platform.values)
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
            # One secret for every component: the scheduler signs the tokens the API server checks.
            AIRFLOW__API_AUTH__JWT_SECRET="scheduler-kill-test-secret",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            # Only the backfill's run: unpausing the DAG schedules no run of today (whose data is not there).
            AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
            # The new scheduler takes the dead one's job for dead after 30 s without a heartbeat and looks
            # for its orphaned tasks every 5 s (defaults: 30 s and 5 minutes); a task without a heartbeat
            # for 60 s is failed too (default: 5 minutes), as in the simulation (simulation/scheduler.py).
            # Shorter limits fail live work on a busy machine: a scheduler whose loop or a task whose
            # heartbeat lags past them is taken for dead, and the task is run again and again.
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD="30",
            AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL="5",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="60",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        )
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str) -> str:
        done = subprocess.run(["airflow", *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    def start(self, component: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{component}.log").open("ab")
        process = subprocess.Popen(
            ["airflow", component], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[component] = process
        return process

    def kill(self, component: str) -> None:
        process = self.processes.pop(component)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to each component's process group, then SIGKILL to whatever of it is left: a
        component's children may outlive it (they would run on after the test, on a deleted home)."""
        for component in list(self.processes):
            process = self.processes.pop(component)
            os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture
def airflow(tmp_path: Path) -> Iterator[tuple[Airflow, PlatformEnv]]:
    platform = PlatformEnv(tmp_path)
    airflow = Airflow(tmp_path, platform)
    airflow.cli("db", "migrate")
    for component in ("api-server", "dag-processor"):  # the scheduler once the backfill exists
        airflow.start(component)
    try:
        yield airflow, platform
    finally:
        airflow.stop()


def test_a_scheduler_killed_mid_task_leaves_the_retry_to_land_the_day_once(
    airflow: tuple[Airflow, PlatformEnv],
) -> None:
    af, platform = airflow
    wait_for(lambda: bool(af.query("SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID)), f"{DAG_ID} parsed", 240)
    af.cli("dags", "unpause", DAG_ID)
    af.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", DAY_START.isoformat(),
           "--to-date", (DAY_START + timedelta(hours=2)).isoformat())  # fmt: skip
    af.start("scheduler")
    backfill = "SELECT run_id FROM dag_run WHERE dag_id = ? AND run_type = 'backfill'"
    wait_for(lambda: bool(af.query(backfill, DAG_ID)), "the backfill's run created", 120)
    run_id = af.query(backfill, DAG_ID)[0][0]

    running: list[tuple[str]] = []

    def a_task_runs() -> bool:
        running[:] = af.query(
            "SELECT task_id FROM task_instance WHERE dag_id = ? AND run_id = ? AND state = 'running'", DAG_ID, run_id
        )
        return bool(running)

    wait_for(a_task_runs, "a task of the run running", 300, interval=0.02)
    killed_task = running[0][0]
    af.kill("scheduler")  # its group: the LocalExecutor's task processes die with it
    af.start("scheduler")

    state = "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?"
    wait_for(lambda: af.query(state, DAG_ID, run_id)[0][0] in ("success", "failed"), "the run finished", 900)
    tries = dict(af.query("SELECT task_id, try_number FROM task_instance WHERE run_id = ?", run_id))
    log = (af.root / "scheduler.log").read_text(errors="replace")[-3000:]
    assert af.query(state, DAG_ID, run_id)[0][0] == "success", f"{tries}\n{log}"
    assert tries[killed_task] == 2, f"the killed try failed and the retry ran: {tries}"
    history = af.query(
        "SELECT state FROM task_instance_history WHERE run_id = ? AND task_id = ? AND try_number = 1",
        run_id,
        killed_task,
    )
    assert history == [("failed",)], history

    from core.dataset import DatasetConfig
    from core.partitions import landing_path, validated_path

    with platform:
        settings = platform.settings()
        dataset = DatasetConfig.from_yaml(platform.config, settings)
        for location in (
            landing_path(settings, dataset, SYNTHETIC_END),
            validated_path(settings, dataset, SYNTHETIC_END),
        ):
            path = Path(location)
            assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"], "a partial file left behind"
            frame = pd.read_parquet(path)
            assert not frame.duplicated([dataset.entity_column, dataset.timestamp_column]).any()
            newest = pd.to_datetime(frame[dataset.timestamp_column], utc=True).max()
            assert newest.date() == SYNTHETIC_END
