"""Run one DAG of this repo in-process with Airflow's ``dag.test()`` (SQLite, no services).

    python infra/scripts/run_dag.py retrain_ett_forecaster --conf '{"training_window_end": "2018-06-26"}'

Airflow's home defaults to ``<MLOPS_HOME>/airflow``; its database is migrated on first use. Prints
one line per task as it finishes (state and duration), then the run's state, wall time and Airflow's
overhead (wall time divided by the sum of task durations), and exits non-zero when the run failed.

Airflow's and the libraries' logs and whatever the tasks print (their subprocesses included) go to
a log file (``--log``, default ``<MLOPS_HOME>/logs/<dag_id>.log``), whose path is printed first; a
failed task's last log lines are printed with the result. ``--verbose`` (or ``VERBOSE=1``) keeps
everything on the terminal instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A task instance in one of these states will not run again in this run.
FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
ERROR_TAIL_LINES = 20
POLL_SECONDS = 0.5
# Airflow's own bookkeeping at info level ("Task started", "::group::", "[DAG TEST] ..."): left out
# of a failed task's tail, which is there to show what the task itself said.
AIRFLOW_CHATTER = re.compile(r"^\S+ \[(info|debug)\s*\] .*\[(airflow[.\w]*|task)\]")
CARETS = re.compile(r"^\s*[\^~]+\s*$")
LIBRARY_FRAME = re.compile(r'^\s*File ".*/site-packages/.*", line \d+')


def prepare_airflow() -> None:
    home = Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve()
    os.environ.setdefault("AIRFLOW_HOME", str(home / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)


def verbose_from_env() -> bool:
    """``VERBOSE=1`` (as in ``VERBOSE=1 make demo``) asks for every log line on the terminal."""
    return os.environ.get("VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


def default_log(dag_id: str) -> Path:
    """Next to the platform's other state, one file per DAG: a rerun replaces its own log only."""
    return Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve() / "logs" / f"{dag_id}.log"


@contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """Point file descriptors 1 and 2 at ``log`` for the block; yield a stream on the original stdout.

    Descriptors, not ``sys.stdout``: Airflow's log handlers, progress bars, C extensions and the
    training processes the tasks start all write to fds 1 and 2, and a subprocess inherits them.
    ``O_APPEND``: both descriptors share the file without overwriting each other.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (log_fd, saved_out, saved_err):
            os.close(fd)
        terminal.close()


@dataclass(frozen=True)
class Finished:
    """One task instance's final word, as the metadata database holds it."""

    task_id: str
    map_index: int
    state: str
    seconds: float | None

    @property
    def name(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    def line(self) -> str:
        seconds = "-" if self.seconds is None else f"{self.seconds:.1f}s"
        return f"  {self.name:<28} {self.state:<16} {seconds:>8}"


def finished(task_instances: Iterable[Any]) -> list[Finished]:
    """The finished ones among ``task_instances``, in the order they finished."""
    done = [ti for ti in task_instances if str(ti.state) in FINISHED]
    done.sort(key=lambda ti: (ti.end_date is None, ti.end_date or datetime.min.replace(tzinfo=UTC)))
    return [Finished(ti.task_id, ti.map_index, str(ti.state), ti.duration) for ti in done]


class Progress(threading.Thread):
    """Prints each task instance of one run once, as soon as the metadata database says it finished.

    ``dag.test()`` runs the tasks one after the other in this process and returns only at the end;
    polling the database from a thread sees every final state live, including those no task code
    runs for (skipped by a branch, upstream_failed, an empty mapped task), which callbacks and
    listeners never hear of.
    """

    def __init__(self, dag_id: str, run_id: str, out: TextIO) -> None:
        super().__init__(name=f"progress of {dag_id}", daemon=True)
        self.dag_id, self.run_id, self.out = dag_id, run_id, out
        self.printed: dict[tuple[str, int], Finished] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(POLL_SECONDS):
            try:
                self.report(self._query())
            except Exception as exc:  # a busy SQLite database, say: the next poll sees the same states
                print(f"run_dag progress: {exc!r}", file=sys.stderr)

    def _query(self) -> list[Finished]:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(TaskInstance).where(TaskInstance.dag_id == self.dag_id, TaskInstance.run_id == self.run_id)
        with create_session() as session:
            return finished(session.scalars(query))

    def report(self, done: list[Finished]) -> None:
        with self._lock:
            for task in done:
                if (task.task_id, task.map_index) not in self.printed:
                    self.printed[(task.task_id, task.map_index)] = task
                    print(task.line(), file=self.out, flush=True)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()

    def finish(self, run: Any) -> list[Finished]:
        """Stop polling, print what polling missed (all of it when it never started) from the run
        ``dag.test()`` returned, and return every task instance's final word."""
        self.stop()
        final = finished(run.get_task_instances())
        self.report(final)
        return final


def error_tail(log: Path, task: Finished, lines: int = ERROR_TAIL_LINES) -> list[str]:
    """The last ``lines`` of what ``task`` logged, from its stretch of ``log`` (``dag.test()`` marks
    where each task starts and ends), Airflow's own info lines left out; the file's end without marks."""
    text = log.read_text(errors="replace").splitlines()
    start = f"[DAG TEST] starting task_id={task.task_id} map_index={task.map_index} "
    end = f"[DAG TEST] end task task_id={task.task_id} map_index={task.map_index} "
    begins = [i for i, line in enumerate(text) if start in line]
    if begins:
        text = text[begins[-1] :]
        ends = [i for i, line in enumerate(text) if end in line]
        text = text[: ends[0]] if ends else text
    said = [line if len(line) <= 300 else line[:297] + "..." for line in text if not AIRFLOW_CHATTER.match(line)]
    return without_library_frames(said)[-lines:]


def without_library_frames(lines: list[str]) -> list[str]:
    """A traceback's frames in installed packages (Airflow's task runner, mostly) folded into one
    line each run of them, and Python's ^^^ markers dropped: the tail is short, the task's own frames
    and the exception are what it is for."""
    kept: list[str] = []
    folded = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        if LIBRARY_FRAME.match(line):
            folded += 1
            code = index + 1 < len(lines) and not lines[index + 1].lstrip().startswith(("File ", "Traceback"))
            index += 2 if code else 1
            continue
        index += 1
        if CARETS.match(line):
            continue
        if folded:
            kept.append(f"    [{folded} frame{'s' if folded > 1 else ''} in installed packages]")
            folded = 0
        kept.append(line)
    if folded:
        kept.append(f"    [{folded} frame{'s' if folded > 1 else ''} in installed packages]")
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dag_id")
    parser.add_argument("--conf", type=json.loads, default={}, help="the run's conf (JSON object)")
    parser.add_argument("--report", type=Path, default=None, help="write task timings as JSON here")
    parser.add_argument(
        "--logical-date", default=None, help="the run's logical date, YYYY-MM-DD (default: now; e.g. a daily check)"
    )
    parser.add_argument(
        "--log", type=Path, default=None, help="the run's log (default: <MLOPS_HOME>/logs/<dag_id>.log)"
    )
    parser.add_argument(
        "--verbose", action="store_true", default=verbose_from_env(), help="every log line on the terminal (VERBOSE=1)"
    )
    args = parser.parse_args(argv)
    log: Path = (args.log or default_log(args.dag_id)).resolve()
    if not args.verbose:
        print(f"{args.dag_id}: dag.test(), one line per task; Airflow's log: {log}", flush=True)
    output: AbstractContextManager[TextIO] = nullcontext(sys.stdout) if args.verbose else output_to(log)
    with output as out:
        return run(args, out, None if args.verbose else log)


def run(args: argparse.Namespace, out: TextIO, log: Path | None) -> int:
    """Run the DAG, reporting to ``out``; ``log``: where Airflow's output goes (None: ``out`` too)."""
    prepare_airflow()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=out)
        return 2
    dag = bag.get_dag(args.dag_id)
    if dag is None:
        print(f"no DAG {args.dag_id!r}; known: {sorted(bag.dags)}", file=out)
        return 2
    # dag.test()'s own defaults, made explicit so that the run's id is known before it starts.
    run_after = datetime.now(UTC)
    logical_date = datetime.fromisoformat(args.logical_date).replace(tzinfo=UTC) if args.logical_date else run_after
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=run_after)
    progress = Progress(args.dag_id, run_id, out)
    if log is not None:  # verbose: the lines come at the end, after Airflow's
        progress.start()
    started = time.monotonic()
    try:
        dag_run = dag.test(run_conf=args.conf, logical_date=logical_date, run_after=run_after)
    finally:
        progress.stop()
    wall = time.monotonic() - started
    tasks = progress.finish(dag_run)
    state = str(dag_run.state)
    timings = {task.name: {"state": task.state, "seconds": task.seconds} for task in tasks}
    busy = sum(task.seconds or 0.0 for task in tasks)
    overhead = wall / busy if busy else float("nan")
    print(f"{args.dag_id} run {dag_run.run_id}: {state} in {wall:.1f}s (tasks {busy:.1f}s, Airflow overhead "
          f"x{overhead:.2f})", file=out)  # fmt: skip
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        report = {"dag_id": args.dag_id, "state": state, "wall_seconds": wall, "task_seconds": busy,
                  "overhead": overhead, "tasks": timings}  # fmt: skip
        args.report.write_text(json.dumps(report, indent=2))
    if state == "success":
        return 0
    failed = [task for task in tasks if task.state == "failed"]
    print(f"failed: {', '.join(task.name for task in failed) or 'no task (see the log)'}", file=out)
    if log is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        for task in failed[:1]:
            print(f"--- the end of {task.name}'s log ({log}):", file=out)
            for line in error_tail(log, task):
                print(f"  {line}", file=out)
    return 1


if __name__ == "__main__":
    sys.exit(main())
