"""Run one DAG of this repo in-process with Airflow's ``dag.test()`` (SQLite, no services).

    python infra/scripts/run_dag.py retrain_ett_forecaster --conf '{"training_window_end": "2018-06-26"}'

Airflow's home defaults to ``<MLOPS_HOME>/airflow``; its database is migrated on first use. Prints
each task's state and duration, the run's wall time and Airflow's overhead (wall time divided by
the sum of task durations), and exits non-zero when the run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def prepare_airflow() -> None:
    home = Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve()
    os.environ.setdefault("AIRFLOW_HOME", str(home / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dag_id")
    parser.add_argument("--conf", type=json.loads, default={}, help="the run's conf (JSON object)")
    parser.add_argument("--report", type=Path, default=None, help="write task timings as JSON here")
    parser.add_argument(
        "--logical-date", default=None, help="the run's logical date, YYYY-MM-DD (default: now; e.g. a daily check)"
    )
    args = parser.parse_args(argv)
    prepare_airflow()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    dag = bag.get_dag(args.dag_id)
    if dag is None:
        print(f"no DAG {args.dag_id!r}; known: {sorted(bag.dags)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    if args.logical_date:
        from datetime import UTC, datetime

        run = dag.test(run_conf=args.conf, logical_date=datetime.fromisoformat(args.logical_date).replace(tzinfo=UTC))
    else:
        run = dag.test(run_conf=args.conf)
    wall = time.monotonic() - started
    tasks = sorted(run.get_task_instances(), key=lambda ti: ti.start_date or run.start_date)
    timings = {ti.task_id: {"state": str(ti.state), "seconds": ti.duration} for ti in tasks}
    busy = sum(t["seconds"] or 0.0 for t in timings.values())
    print(f"\n{args.dag_id} run {run.run_id}: {run.state}")
    for task_id, timing in timings.items():
        seconds = "-" if timing["seconds"] is None else f"{timing['seconds']:.1f}s"
        print(f"  {task_id:<26} {timing['state']:<16} {seconds:>8}")
    overhead = wall / busy if busy else float("nan")
    print(f"  wall time {wall:.1f}s, task time {busy:.1f}s, Airflow overhead x{overhead:.2f}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        report = {"dag_id": args.dag_id, "state": str(run.state), "wall_seconds": wall, "task_seconds": busy,
                  "overhead": overhead, "tasks": timings}  # fmt: skip
        args.report.write_text(json.dumps(report, indent=2))
    return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
