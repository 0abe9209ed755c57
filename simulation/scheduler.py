"""Airflow's own components running the simulated days on the simulation's servers.

``airflow api-server``, ``dag-processor`` and ``scheduler`` (LocalExecutor: each task a process of
the scheduler's workers) run as processes of their own, with Airflow's metadata in a PostgreSQL
cluster of the stack's. The simulation acts only as a user and an operator would: it triggers runs over the REST
API (v2) with their logical dates, and, where a run failed for good, clears it as the UI's "Clear"
does. Everything else is Airflow's: the DAGs that consume a day's data start on their Assets, a
failed try is retried, a killed scheduler's tasks are found orphaned by the next one.

What ran is read from the metadata database (read-only): the runs since a point, their tasks'
states, tries and process ids.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.net import LOOPBACK, free_port, http_ok
from harness.servers import Server

COMPONENTS = ("api-server", "dag-processor", "scheduler")
ADMIN = "admin"
READY_SECONDS = 240.0
PARSE_SECONDS = 300.0
FINISHED = ("success", "failed")
# How fast the scheduler recovers from a dead peer: its job taken for dead after 20 s without a
# heartbeat, orphaned tasks looked for every 10 s; a task whose heartbeat stopped 60 s ago is failed
# (defaults: 30 s, 5 minutes, 5 minutes). The task timeout stays well above a busy machine's pauses.
RECOVERY = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "20",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}


@dataclass(frozen=True)
class Run:
    """One DAG run as the metadata database holds it."""

    id: int
    dag_id: str
    run_id: str
    state: str
    run_type: str
    ended: float | None = None  # Unix seconds, once finished

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class Metadata:
    """Read-only queries of Airflow's metadata database (PostgreSQL); ``?`` marks a parameter."""

    def __init__(self, conninfo: str):
        self.conninfo = conninfo

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(sql.replace("?", "%s"), args).fetchall()

    def newest_run(self) -> int:
        """The id of the newest DAG run of any DAG (0: none yet): runs created later have larger ids."""
        return int(self.query("SELECT coalesce(max(id), 0) FROM dag_run")[0][0])

    def runs_since(self, after: int) -> list[Run]:
        rows = self.query(
            "SELECT id, dag_id, run_id, state, run_type, end_date FROM dag_run WHERE id > ? ORDER BY id", after
        )
        return [
            Run(int(i), str(d), str(r), str(s), str(t), e.timestamp() if e is not None else None)
            for i, d, r, s, t, e in rows
        ]

    def tasks(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """Task id -> (state, try number) of one run."""
        rows = self.query(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id
        )
        return {str(task): (state, int(tries)) for task, state, tries in rows}

    def running(self, dag_id: str, task_id: str, after: int) -> tuple[Run, int | None] | None:
        """The run, newer than ``after``, in which ``task_id`` of ``dag_id`` is running now, and the
        task's process (None until its supervisor reported it)."""
        rows = self.query(
            "SELECT dr.id, dr.dag_id, dr.run_id, dr.state, dr.run_type, ti.pid FROM dag_run dr JOIN task_instance ti "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE ti.dag_id = ? AND ti.task_id = ? AND dr.id > ? "
            "AND ti.state = 'running' ORDER BY ti.start_date DESC",
            dag_id, task_id, after,
        )  # fmt: skip
        if not rows:
            return None
        number, dag, run_id, state, run_type, pid = rows[0]
        return Run(int(number), str(dag), str(run_id), str(state), str(run_type)), None if pid is None else int(pid)


class Airflow:
    """The three components on the metadata database ``metadata_url``, with the environment of the
    simulation's platform (``environ``: its ``MLOPS_*`` and ``AIRFLOW_HOME``), logs under ``logs``."""

    def __init__(self, environ: dict[str, str], metadata_url: str, conninfo: str, logs: Path, parallelism: int = 4):
        self.port = free_port()
        self.base = f"http://{LOOPBACK}:{self.port}"
        self.logs = logs
        self.password = os.urandom(12).hex()
        passwords = Path(environ["AIRFLOW_HOME"]) / "passwords.json"
        self.env = {
            **environ,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url,  # not the asyncpg URL Airflow would derive
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(self.port),
            # Task runners report to this API server; one secret signs the tokens every component checks.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            **RECOVERY,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}",
        }
        self.metadata = Metadata(conninfo)
        self.program = str(Path(sys.executable).parent / "airflow")
        self.servers = {
            c: Server([self.program, c], name=f"airflow {c}", log=logs / f"airflow-{c}.log", append=True, env=self.env)
            for c in COMPONENTS
        }
        self._token: str | None = None
        passwords.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump({ADMIN: self.password}, file)

    # --- the components -------------------------------------------------------------------------

    def start(self, dag_ids: list[str]) -> None:
        """Migrate the metadata database, start the components, and unpause ``dag_ids`` once parsed."""
        argv = [self.program, "db", "migrate"]
        migrate = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=600)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {migrate.stdout[-2000:]}{migrate.stderr[-2000:]}")
        self.servers["api-server"].start(lambda: http_ok(f"{self.base}/api/v2/monitor/health"), READY_SECONDS, 0.5)
        for component in ("dag-processor", "scheduler"):
            self.start_component(component)
        deadline = time.monotonic() + PARSE_SECONDS
        for dag_id in dag_ids:
            while not self._request("GET", f"/api/v2/dags/{dag_id}", ok_only=False).ok:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{dag_id} not parsed in {PARSE_SECONDS:g} s (log: {self.logs})")
                time.sleep(1.0)
            self._request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def start_component(self, component: str) -> None:
        self.servers[component].start(lambda: True, READY_SECONDS)

    def kill(self, component: str) -> None:
        """SIGKILL the component's whole process group (for the scheduler: its task processes too)."""
        process = self.servers[component].process
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)

    def pid(self, component: str) -> int | None:
        process = self.servers[component].process
        return process.pid if process is not None and process.poll() is None else None

    def stop(self) -> None:
        for component in reversed(COMPONENTS):
            self.servers[component].stop(grace=30.0)

    # --- REST, as a user ------------------------------------------------------------------------

    def _request(self, method: str, path: str, ok_only: bool = True, **kwargs: Any) -> Any:
        import requests

        for attempt in range(2):
            if self._token is None:
                answer = requests.post(
                    f"{self.base}/auth/token", json={"username": ADMIN, "password": self.password}, timeout=30
                )
                answer.raise_for_status()
                self._token = str(answer.json()["access_token"])
            headers = {"Authorization": f"Bearer {self._token}"}
            answer = requests.request(method, f"{self.base}{path}", headers=headers, timeout=60, **kwargs)
            if answer.status_code == 401 and attempt == 0:
                self._token = None  # expired: log in again
                continue
            if ok_only and not answer.ok:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:1000]}")
            return answer
        raise AssertionError("unreachable")

    def trigger(
        self, dag_id: str, run_id: str, logical_date: datetime | None = None, conf: dict[str, Any] | None = None
    ) -> str:
        """Start a run of ``dag_id`` (POST dagRuns), dated ``logical_date``; its run id."""
        body = {
            "dag_run_id": run_id,
            "logical_date": logical_date.isoformat() if logical_date is not None else None,
            "conf": conf or {},
        }
        return str(self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body).json()["dag_run_id"])

    def clear(self, dag_id: str, run_id: str) -> None:
        """Clear every task of a run, as an operator's "Clear" of a failed run: it runs again whole."""
        body = {"dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True}
        self._request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json=body)
