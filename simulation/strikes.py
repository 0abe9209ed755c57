"""How each fault of the plan (:mod:`simulation.faults`) strikes the DAG run it is meant for, and what
an operator puts right before a run that failed for good is cleared.

A fault that needs a task to be running is a :class:`simulation.faults.TaskWatch` on that task,
whose action is the fault (a server restarted, a task's process, the scheduler or a service worker
killed); the data faults and S3's 503s are in place before the run starts. Each fault records when it struck, when it
was over and what it hit, which the report turns into the windows the service's answers are split by.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulation.faults import Fault, TaskWatch
from simulation.readings import features_of_day, reading

if TYPE_CHECKING:
    from simulation.replay import Simulation
    from simulation.scheduler import Airflow, Run
    from simulation.stack import Service

# The table whose statements a PostgreSQL restart cuts: (database, table) per fault.
POSTGRES_TARGETS = {
    "restart_postgres_forecasts": ("forecasts", "forecasts"),
    "restart_postgres_mlflow": ("mlflow", "runs"),
}
# How long a PostgreSQL restart holds its table locked waiting for the task's statement: a task on a
# busy machine may take a minute to import, load its model and forecast before it writes.
POSTGRES_CATCH_SECONDS = 120.0
# Faults in the day's data: struck only when the DAG run they were in place for failed on them.
DATA_FAULTS = ("late_file", "bad_rows")
# Faults that kill a task's process: struck only when Airflow failed that try (and ran another).
KILLS = ("kill_task", "kill_scheduler")
# The longest the tracking server stays down waiting for the task's first request. The task is
# "running" from its process's start, and on a busy machine its imports alone may take a minute or
# two before it asks anything; the server starts again as soon as a retried request shows, well
# within the client's retries of a refused request (7, with backoff: about two minutes).
MLFLOW_DOWN_SECONDS = 300.0
# How long a kill waits before it reads the task's state in Airflow's record.
KILL_SETTLE_SECONDS = 0.5


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
    assert stack is not None, f"{fault.kind} needs the simulation's servers"
    airflow = stack.airflow
    assert airflow is not None, f"{fault.kind} strikes the runs of Airflow's scheduler"
    if fault.kind == "late_file":

        def deliver(task: str) -> None:
            # the ingest failed on the missing file (Airflow retries it): the fault bit
            simulation.source.reveal(day)
            fault.ended, fault.hit_task, fault.injected = time.time(), task, True

        return TaskWatch(airflow.metadata, dag_id, fault.task, ("up_for_retry", "failed"), deliver)
    if fault.kind == "bad_rows":
        return contextlib.nullcontext()

    def act(task: str) -> bool:
        if fault.kind in KILLS:
            running = airflow.metadata.running(dag_id, task, watch.after)
            if running is None or running[1] is None:
                return False  # the task ended in the meantime: the watch waits for another
            fault.struck, fault.hit_task, fault.injected = time.time(), task, True
            if not kill(airflow, fault.kind, running[0], task, running[1]):
                return False  # it had reported its end before the kill: the watch waits for another
            fault.ended = time.time()
            return True
        fault.struck, fault.hit_task, fault.injected = time.time(), task, True
        if fault.kind == "restart_redis":
            stack.redis.restart(fault.seconds)
        elif fault.kind == "restart_mlflow":
            restart_mlflow(simulation, fault, dag_id, task, watch.after)
        elif fault.kind.startswith("restart_postgres"):
            database, table = POSTGRES_TARGETS[fault.kind]
            # The DAG's statements: from its task's process on the forecast table, through the
            # tracking server on MLflow's.
            roots = [airflow.pid("scheduler") if database == "forecasts" else stack.mlflow.pid()]

            def ours() -> set[int]:
                return stack.postgres.client_ports([pid for pid in roots if pid is not None])

            if not stack.postgres.restart_in_a_write(database, table, ours, POSTGRES_CATCH_SECONDS):
                # restarted, but it cut nothing: it did not strike what it was planned for
                fault.injected = False
                fault.notes.append(f"no statement of the DAG on {database}.{table} was in flight at the restart")
        elif fault.kind == "kill_worker":
            assert stack.service is not None
            kill_worker(stack.service, fault)
        fault.ended = time.time()
        return True

    watch = TaskWatch(airflow.metadata, dag_id, fault.task, ("running",), act, fault.delay_s)
    return watch


def kill(airflow: Airflow, kind: str, run: Run, task: str, pid: int) -> bool:
    """SIGKILL the process of ``task`` (running in ``run`` as ``pid``): alone (``kill_task``: its
    supervisor reports the try failed) or with the scheduler's whole container (``kill_scheduler``:
    the scheduler and its executor's workers, the task's supervisors among them, then the task's
    process, in a process group of its own; a new scheduler is started). Whether it bit: the try
    was still running in Airflow's record once its supervisor could no longer report it, since a
    short task may end, and report its end, between the watch seeing it and the kill."""
    if kind == "kill_scheduler":
        airflow.kill("scheduler")
        time.sleep(KILL_SETTLE_SECONDS)  # a request the dead supervisor had sent is answered by now
        bit = airflow.metadata.tasks(run.dag_id, run.run_id).get(task, (None, 0))[0] == "running"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        airflow.start_component("scheduler")
        return bit
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 30.0  # the supervisor reports the try's end
    state: str | None = "running"
    while state == "running" and time.monotonic() < deadline:
        time.sleep(KILL_SETTLE_SECONDS)
        state = airflow.metadata.tasks(run.dag_id, run.run_id).get(task, (None, 0))[0]
    return state != "success"


def restart_mlflow(simulation: Simulation, fault: Fault, dag_id: str, task: str, after: int) -> None:
    """Stop the tracking server while ``task`` runs, keep it down until the task's log shows a request
    it retried against the server (its client met the restart; at most :data:`MLFLOW_DOWN_SECONDS`,
    or until the task stopped running), then start it again. Struck only when such a retry was seen."""
    stack, airflow = simulation.stack, simulation.airflow
    assert stack is not None
    assert airflow is not None
    logs, port = simulation.home / "airflow" / "logs", stack.mlflow.port
    running = airflow.metadata.running(dag_id, task, after)
    run = running[0] if running is not None else None
    stack.mlflow.stop()
    try:
        deadline = time.monotonic() + MLFLOW_DOWN_SECONDS
        while run is not None and time.monotonic() < deadline and not retried_through(logs, run, port):
            if airflow.metadata.tasks(run.dag_id, run.run_id).get(task, (None, 0))[0] != "running":
                break
            time.sleep(0.5)
    finally:
        stack.mlflow.start()
    if run is None or not retried_through(logs, run, port):
        fault.injected = False
        fault.notes.append(f"no MLflow request of {task} met the restart")


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


def retried_through(logs: Path, run: Run, port: int) -> bool:
    """Whether a task of ``run`` logged a retried request to the server on ``port`` (a client that met
    it down: how a tracking-server restart is seen to bite)."""
    folder = logs / f"dag_id={run.dag_id}" / f"run_id={run.run_id}"
    needle = f"port={port})"
    return any(
        "Retrying" in line and needle in line
        for path in sorted(folder.rglob("attempt=*.log"))
        for line in path.read_text(errors="replace").splitlines()
    )


def settled(fault: Fault, run: Run | None, tries: int) -> None:
    """Once the day's runs finished: ``run`` is the newest run of the DAG ``fault`` was for, ``tries``
    Airflow's tries of the task it hit there. A fault that struck is healed when that run succeeded,
    by Airflow itself unless an operator cleared the run; a data fault that never failed it never bit."""
    if run is None:
        fault.notes.append("its DAG did not run")
        return
    fault.tries = tries
    if fault.kind in KILLS and fault.injected and tries < 2:
        fault.injected = False  # Airflow's record says the try it killed did not fail
        fault.notes.append(f"the try of {fault.hit_task} it killed did not fail: it never bit")
    if run.state != "success":
        return
    if fault.injected:
        fault.healed = fault.healed or run.ended or time.time()
        fault.healed_by = fault.healed_by or "automatic"
    elif fault.kind in DATA_FAULTS:
        fault.notes.append("the run succeeded with the fault in place: it never bit")


def after_failure(simulation: Simulation, day: date, faults: list[Fault]) -> None:
    """What an operator puts right before clearing a failed run: the corrected file delivered, a late
    one delivered, a server back; and, for a refused day, what stood after the refusal recorded."""
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
