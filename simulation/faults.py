"""Faults injected into the daily loop while it runs, and what the service answered meanwhile.

A fault strikes a DAG of one simulated day at a point drawn from the seed: when one of the DAG's
tasks is running (or, for the data faults, when the day's file is delivered). The standard set:

- ``kill_task``: the process of a running task (its task instance's pid) is SIGKILLed; the task's
  supervisor reports the try failed and Airflow retries it;
- ``kill_scheduler``: the scheduler's container is lost mid-task: the scheduler, the LocalExecutor's
  workers and the task they run are SIGKILLed, and a new scheduler is started; it finds the dead
  one's task orphaned (or without a heartbeat) and Airflow runs it again as its next try;
- ``restart_postgres_forecasts`` / ``restart_postgres_mlflow``: ``pg_ctl restart -m fast`` while the
  batch forecast writes the forecast table, or while a DAG logs to MLflow (its backend store);
- ``restart_mlflow``: MLflow's tracking server is stopped while a DAG's task runs and started again
  once the task's log shows a request it retried against it (its client's retries bridge the gap);
- ``restart_redis``: the online store stops for a few seconds while the day's features are loaded,
  and while the service answers its load;
- ``kill_worker``: one of the service's workers is SIGKILLed (its supervisor starts another);
- ``s3_unavailable``: S3 answers 503 SlowDown to every request for a while, from the ingest's start;
- ``late_file``: the day's rows are not in the source when the ingest runs; they arrive once its
  first attempt has failed (before Airflow's retry);
- ``bad_rows``: the day's file arrives with rows out of the dataset's value ranges and a missing
  target; the corrected file follows the refused run, which an operator then clears (the one heal
  that is not Airflow's own).

Each fault is a window of wall-clock time, from the moment it struck to the moment the loop was
whole again (the DAG it hit succeeded, the service answered again); the load's answers are split by
those windows.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from simulation.scheduler import Metadata

STANDARD = (
    "kill_task",
    "kill_scheduler",
    "restart_redis",
    "restart_postgres_forecasts",
    "restart_postgres_mlflow",
    "restart_mlflow",
    "kill_worker",
    "s3_unavailable",
    "late_file",
    "bad_rows",
)
REDIS_DOWN_SECONDS = 3.0
# Where each fault strikes: the DAG (by its kind, the DAG id being ``<kind>_<dataset>``) and the task
# whose run triggers it; None: drawn from the DAG's tasks.
TARGETS: dict[str, list[tuple[str, str | None]]] = {
    "kill_task": [("ingest", None), ("forecast", None), ("score", None)],
    "kill_scheduler": [("ingest", None), ("forecast", None), ("score", None)],
    "restart_redis": [("ingest", "materialize")],
    "restart_postgres_forecasts": [("forecast", "issue_forecasts")],
    # The tasks that write MLflow runs (the nightly backtest's publish only pushes to the Pushgateway).
    "restart_postgres_mlflow": [("drift_monitor", "check_drift"), ("nightly_backtest", "backtest")],
    "restart_mlflow": [("drift_monitor", "check_drift"), ("nightly_backtest", "backtest")],
    "kill_worker": [("forecast", "issue_forecasts"), ("score", "score"), ("nightly_backtest", "backtest")],
    "s3_unavailable": [("ingest", "ingest")],
    "late_file": [("ingest", "ingest")],
    "bad_rows": [("ingest", "ingest")],
}


@dataclass
class Fault:
    """One fault of the plan, and what happened when it struck (times in Unix seconds)."""

    kind: str
    day: str
    dag: str  # the DAG's kind: ingest, forecast, score, drift_monitor, nightly_backtest
    task: str | None
    delay_s: float  # how long after the task started running it struck
    seconds: float = 0.0  # how long the fault lasts, where it lasts (S3's 503s)
    injected: bool = False
    struck: float | None = None
    ended: float | None = None  # the fault itself over: the server back, the file delivered
    healed: float | None = None  # the loop whole again: the DAG it hit succeeded, the service answering
    hit_task: str | None = None  # the task running when it struck
    attempts: int = 0  # runs of the DAG it hit, the first included (a run cleared again counts anew)
    tries: int = 0  # Airflow's tries of the task it hit, in the run that healed
    # "automatic" (Airflow's retries and recovery, a server's own) or "operator" (a run cleared)
    healed_by: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def heal_s(self) -> float | None:
        span = window(self)
        if span is None or self.healed is None:
            return None
        return round(span[1] - span[0], 1)


def plan(kinds: list[str], days: list[str], seed: int, task_ids: Callable[[str], list[str]]) -> list[Fault]:
    """The faults of ``kinds`` on distinct days drawn from ``seed`` (the same seed, the same plan).

    With fewer days than faults, faults share days. The first day is left alone when there are
    enough days: it scores the bootstrap's forecasts, the loop's first whole turn.
    """
    draw = random.Random(seed)
    candidates = days[1:] if len(days) > len(kinds) else days
    chosen = (
        draw.sample(candidates, len(kinds))
        if len(candidates) >= len(kinds)
        else [candidates[i % len(candidates)] for i in range(len(kinds))]
    )
    faults = []
    for kind, day in zip(kinds, chosen, strict=True):
        dag, task = draw.choice(TARGETS[kind])
        if task is None:
            task = draw.choice(task_ids(dag))
        seconds = round(draw.uniform(20.0, 40.0), 1) if kind == "s3_unavailable" else 0.0
        if kind == "restart_redis":
            seconds = REDIS_DOWN_SECONDS
        # A kill strikes a moment into its task; a restart of PostgreSQL locks the table as soon as the
        # task runs and waits for the task's statement (see Postgres.restart_in_a_write).
        delay = round(draw.uniform(0.0, 0.5), 2) if kind in ("kill_task", "kill_scheduler", "kill_worker") else 0.0
        faults.append(Fault(kind, day, dag, task, delay, seconds))
    return sorted(faults, key=lambda f: (f.day, f.kind))


def kinds_of(option: str) -> list[str]:
    """``standard``, ``none`` or a comma-separated list of fault kinds."""
    if option in ("", "none"):
        return []
    if option == "standard":
        return list(STANDARD)
    kinds = [k.strip() for k in option.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in STANDARD]
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {', '.join(STANDARD)} (or 'standard')")
    return kinds


# The task instances of one DAG's runs newer than a run id: (dag_id, newest run id before the watch).
RUNS_OF_A_DAG = (
    "SELECT ti.task_id FROM task_instance ti JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
    "WHERE ti.dag_id = ? AND dr.id > ?"
)


class TaskWatch:
    """Calls ``action`` once, in a thread of its own, when a task of a DAG reaches a state in a run
    newer than the watch (polling Airflow's metadata database read-only). An action that answers
    False missed its task (it ended in the meantime): the watch goes on, for any other task of the
    DAG that reaches the state."""

    def __init__(self, metadata: Metadata, dag_id: str, task_id: str | None, states: tuple[str, ...],
                 action: Callable[[str], bool | None], delay_s: float = 0.0):  # fmt: skip
        self.metadata, self.dag_id, self.task_id, self.states = metadata, dag_id, task_id, states
        self.action, self.delay_s = action, delay_s
        self.after = self._newest_run()
        self.missed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name=f"watch-{dag_id}")

    def _newest_run(self) -> int:
        rows = self.metadata.query("SELECT max(id) FROM dag_run WHERE dag_id = ?", self.dag_id)
        return int(rows[0][0] or 0)

    def running_task(self) -> str | None:
        """The task of the watched DAG's newest run that is running now, if any."""
        rows = self.metadata.query(
            f"{RUNS_OF_A_DAG} AND ti.state = 'running' ORDER BY ti.start_date DESC",
            self.dag_id, self.after,
        )  # fmt: skip
        return str(rows[0][0]) if rows else None

    def _reached(self) -> str | None:
        placeholders = ",".join("?" * len(self.states))
        sql = f"{RUNS_OF_A_DAG} AND ti.state IN ({placeholders})"
        args: list[Any] = [self.dag_id, self.after, *self.states]
        if self.task_id is not None:
            sql += " AND ti.task_id = ?"
            args.append(self.task_id)
        for missed in sorted(self.missed):
            sql += " AND ti.task_id <> ?"
            args.append(missed)
        rows = self.metadata.query(sql, *args)
        return str(rows[0][0]) if rows else None

    def _watch(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                task = self._reached()
            except psycopg.OperationalError:  # PostgreSQL restarting: look again
                task = None
            if task is not None:
                if self.delay_s:
                    time.sleep(self.delay_s)
                target = self.running_task() or task
                if self.action(target) is not False:
                    return
                self.missed.add(target)
                self.task_id = None  # any other task of the DAG
            self._stop.wait(0.05)

    def __enter__(self) -> TaskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


# --- the service's answers, split by the faults' windows ------------------------------------------


def read_answers(path: Path) -> np.ndarray:
    """The load's CSV as an array of (sent, latency_s, status) rows."""
    if not path.exists() or path.stat().st_size == 0:
        return np.empty((0, 3))
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    return rows[np.argsort(rows[:, 0], kind="stable")]


def answered_stats(rows: np.ndarray) -> dict[str, Any]:
    """Requests, the share answered 2xx, and the latency p50/p99 (ms) of those that got an answer."""
    if rows.size == 0:
        return {"requests": 0, "ok_share": None, "errors": 0, "p50_ms": None, "p99_ms": None}
    status = rows[:, 2]
    ok = (status >= 200) & (status < 300)
    answered = rows[status != 0, 1] * 1000
    return {
        "requests": int(rows.shape[0]),
        "ok_share": round(float(ok.mean()), 5),
        "errors": int((~ok).sum()),
        "p50_ms": round(float(np.percentile(answered, 50)), 1) if answered.size else None,
        "p99_ms": round(float(np.percentile(answered, 99)), 1) if answered.size else None,
    }


def first_ok_after(rows: np.ndarray, moment: float) -> float | None:
    """When the first request sent at or after ``moment`` that got a 2xx answer was answered."""
    if rows.size == 0:
        return None
    later = rows[(rows[:, 0] >= moment) & (rows[:, 2] >= 200) & (rows[:, 2] < 300)]
    return float(later[0, 0] + later[0, 1]) if later.size else None


def window(fault: Fault) -> tuple[float, float] | None:
    """From the moment ``fault`` struck to the last of its end and the loop's healing."""
    if fault.struck is None:
        return None
    return fault.struck, max(t for t in (fault.struck, fault.ended, fault.healed) if t is not None)


def availability(rows: np.ndarray, faults: list[Fault]) -> dict[str, Any]:
    """The service's answers per fault window, outside every window, outside the Redis outage
    (the one fault meant to cost answers) and overall."""
    sent = rows[:, 0] if rows.size else np.empty(0)
    in_any = np.zeros(sent.shape, dtype=bool)
    in_redis = np.zeros(sent.shape, dtype=bool)
    per_fault = []
    for fault in faults:
        span = window(fault)
        if span is None:
            continue
        inside = (sent >= span[0]) & (sent <= span[1])
        in_any |= inside
        if fault.kind == "restart_redis":
            in_redis |= inside
        per_fault.append({"kind": fault.kind, "day": fault.day, "seconds": round(span[1] - span[0], 1),
                          **answered_stats(rows[inside])})  # fmt: skip
    return {
        "overall": answered_stats(rows),
        "outside_faults": answered_stats(rows[~in_any]) if rows.size else answered_stats(rows),
        "outside_redis_outage": answered_stats(rows[~in_redis]) if rows.size else answered_stats(rows),
        "per_fault": per_fault,
    }
