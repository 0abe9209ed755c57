"""How each fault of the plan (:mod:`simulation.faults`) strikes the DAG run it is meant for, and what
is put right before that DAG runs again.

A fault that needs a task to be running is a :class:`simulation.faults.TaskWatch` on that task,
whose action is the fault (a server restarted, a worker or the DAG's process killed); the data
faults and S3's 503s are in place before the run starts. Each fault records when it struck, when it
was over and what it hit, which the report turns into the windows the service's answers are split by.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from simulation.faults import Fault, TaskWatch
from simulation.readings import features_of_day, reading

if TYPE_CHECKING:
    from simulation.replay import Simulation
    from simulation.stack import Service

# The table whose statements a PostgreSQL restart cuts: (database, table) per fault.
POSTGRES_TARGETS = {
    "restart_postgres_forecasts": ("forecasts", "forecasts"),
    "restart_postgres_mlflow": ("mlflow", "runs"),
}
UNFINISHED = ("running", "queued", "scheduled", "up_for_retry", "restarting", "deferred")
# Faults in the day's data: struck only when the DAG run they were in place for failed on them.
DATA_FAULTS = ("late_file", "bad_rows")


def run_dag_killed(simulation: Simulation, dag_id: str, kwargs: dict[str, Any], fault: Fault) -> None:
    """Run ``dag_id`` in a process of its own and SIGKILL it (its whole session) once
    ``fault.task`` is running; then fail what the dead process left unfinished, as Airflow's
    scheduler does when a task's heartbeat stops."""
    encoded = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in kwargs.items()}
    argv = [sys.executable, "-m", "simulation.dagrun", dag_id, json.dumps(encoded)]
    with (simulation.home / "dags.log").open("ab") as log_file:
        child = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)

        def kill(task: str) -> None:
            fault.struck, fault.hit_task, fault.injected = time.time(), task, True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

        with TaskWatch(simulation.airflow_db, dag_id, fault.task, ("running",), kill, fault.delay_s) as watch:
            after = watch.after
            while child.poll() is None and not watch.fired.is_set():
                time.sleep(0.05)
            child.wait(timeout=600)
    if not fault.injected:
        fault.notes.append(f"{fault.task} never ran while the process lived (exit {child.returncode})")
        return
    fail_unfinished(dag_id, after)
    fault.ended = time.time()


def fail_unfinished(dag_id: str, after: int) -> None:
    """Fail the unfinished tasks, and the run, of ``dag_id``'s runs newer than run id ``after``."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.id > after):
            for ti in session.query(TaskInstance).filter(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id, TaskInstance.state.in_(UNFINISHED)
            ):
                ti.state = TaskInstanceState.FAILED
            run.state = DagRunState.FAILED


def strike(simulation: Simulation, fault: Fault, day: date) -> contextlib.AbstractContextManager[Any]:
    """What makes ``fault`` happen during its DAG's run: a watch on its task, or the fault itself
    started now (S3's 503s, a late or bad file: already in place when the run starts)."""
    stack = simulation.stack
    now = time.time()
    if fault.kind in DATA_FAULTS:
        fault.struck = now  # in place from now; struck once the run fails on it (bitten)
    if fault.kind == "s3_unavailable":
        assert stack is not None
        assert stack.s3 is not None
        stack.s3.unavailable_for(fault.seconds)
        fault.struck, fault.injected, fault.ended = now, True, now + fault.seconds
        return contextlib.nullcontext()
    dag_id = simulation.dag_id(fault.dag)
    if fault.kind == "late_file":

        def deliver(task: str) -> None:
            # the ingest failed on the missing file (Airflow retries it): the fault bit
            simulation.source.reveal(day)
            fault.ended, fault.hit_task, fault.injected = time.time(), task, True

        return TaskWatch(simulation.airflow_db, dag_id, fault.task, ("up_for_retry", "failed"), deliver)
    if fault.kind == "bad_rows":
        return contextlib.nullcontext()
    assert stack is not None, f"{fault.kind} needs the simulation's servers"

    def act(task: str) -> None:
        fault.struck, fault.hit_task, fault.injected = time.time(), task, True
        if fault.kind == "restart_redis":
            stack.redis.restart(fault.seconds)
        elif fault.kind.startswith("restart_postgres"):
            database, table = POSTGRES_TARGETS[fault.kind]
            if not stack.postgres.restart_in_a_write(database, table, stack.postgres.client_ports, 30.0):
                # restarted, but it cut nothing: it did not strike what it was planned for
                fault.injected = False
                fault.notes.append(f"no statement of the DAG on {database}.{table} was in flight at the restart")
        elif fault.kind == "kill_worker":
            assert stack.service is not None
            kill_worker(stack.service, fault)
        fault.ended = time.time()

    return TaskWatch(simulation.airflow_db, dag_id, fault.task, ("running",), act, fault.delay_s)


def kill_worker(service: Service, fault: Fault) -> None:
    """SIGKILL one of the service's workers (drawn from the fault's delay) and wait until the
    supervisor's replacement has loaded the model."""
    before = service.worker_pids()
    if not before:
        fault.notes.append("no worker to kill")
        return
    victim = before[int(fault.delay_s * 100) % len(before)]
    started = service.workers_started()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while service.workers_started() == started:  # until the supervisor's new worker has loaded the model
        if time.monotonic() > deadline:
            fault.notes.append("no new worker had started 120 s after the kill")
            return
        time.sleep(0.1)
    fault.healed = time.time()


def bitten(faults: list[Fault]) -> None:
    """A DAG run failed: the data faults in place for it struck (a late file that the run's own retry
    found in time was marked when the ingest failed)."""
    for fault in faults:
        if fault.kind == "bad_rows" and fault.ended is None:
            fault.injected = True


def after_failure(simulation: Simulation, day: date, faults: list[Fault]) -> None:
    """Before running a DAG again: the corrected file delivered, a late one delivered, a server
    back; and, for a refused day, what stood after the refusal recorded."""
    for fault in faults:
        if fault.kind == "bad_rows" and fault.ended is None:
            simulation.refusals[day.isoformat()] = after_refusal(simulation, day)
            simulation.source.reveal(day)  # the corrected file
            fault.ended = time.time()
        if fault.kind == "late_file" and fault.ended is None:
            simulation.source.reveal(day)
            fault.ended = time.time()
        if fault.kind == "s3_unavailable" and fault.ended is not None:
            time.sleep(max(0.0, fault.ended - time.time()))


def after_refusal(simulation: Simulation, day: date) -> dict[str, bool]:
    """What a refused day must have left as it was: nothing validated, no features built from the
    day's rows, the champion the day began with."""
    from core.objects import exists
    from core.partitions import validated_path

    settings, dataset = simulation.settings, simulation.dataset
    return {
        "nothing_validated": not exists(validated_path(settings, dataset, day), settings),
        "no_features_of_the_day": reading(lambda: features_of_day(settings, dataset, day)) == 0,
        "champion_kept": reading(simulation.champion) == simulation.day_champion,
    }
