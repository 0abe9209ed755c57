"""DAG parse benchmark: ``python -m benchmarks.dag_parse --out reports``.

How long Airflow takes to parse each file of ``dags/``. The DAG processor re-parses every file
periodically and gives up on one that takes longer than ``[core] dagbag_import_timeout``; a slow
file also delays every other file's turn. Each file is parsed in a fresh interpreter that has Airflow
imported already (as the DAG processor has), timed around ``DagBag(dag_folder=<file>)``, ``--repeats``
times; the median is reported. In the same run and the same way, a floor: a minimal DAG file (one
``@task``), what Airflow itself costs per file on this machine. The ratio file/floor is what our DAG
code adds, comparable across machines where the seconds are not. Writes ``dag_parse.json`` and
``dag_parse.md``. Figures are reported, not judged; a file that does not parse (import errors, or no
DAG) makes the run fail, as its time would mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
REPEATS = 5
PARSE_TIMEOUT_SECONDS = 120.0

# Run by a fresh interpreter per parse (the benchmark itself never imports Airflow); prints one JSON
# line. Airflow's configuration is read after the timed parse, so it does not count.
PARSE_SCRIPT = """
import json, sys, time
import airflow.sdk  # the DAG processor has Airflow loaded already: time only the file itself
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - started
from airflow.configuration import conf
print(json.dumps({
    "seconds": elapsed,
    "errors": bag.import_errors,
    "dags": sorted(bag.dags),
    "dagbag_import_timeout": conf.getfloat("core", "dagbag_import_timeout"),
}))
"""

# The floor: the least a DAG file can be, written by the TaskFlow API as ours are.
FLOOR_DAG = """
from datetime import datetime

from airflow.sdk import dag, task


@dag(dag_id="parse_floor", schedule=None, start_date=datetime(2024, 1, 1))
def parse_floor():
    @task
    def noop() -> None:
        pass

    noop()


parse_floor()
"""
FLOOR_NAME = "floor (one @task)"


def parse_once(path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse ``path`` with ``DagBag`` in a fresh interpreter: seconds, import errors, DAG ids and the
    configured ``dagbag_import_timeout``. Run from the project root, as the DAG processor imports our
    packages from there."""
    result = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=PARSE_TIMEOUT_SECONDS,
        check=False,
        cwd=PROJECT_ROOT,
        env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"parsing {path} exited with code {result.returncode}:\n{result.stderr[-4000:]}")
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def measure(path: Path, repeats: int, env: dict[str, str] | None, name: str | None = None) -> dict[str, Any]:
    """``repeats`` parses of ``path``: their median (a stray slow start of an interpreter does not move
    it), each run's seconds, and what the last parse found."""
    runs = [parse_once(path, env) for _ in range(repeats)]
    last = runs[-1]
    return {
        "file": name or _shown(path),
        "seconds": round(statistics.median(run["seconds"] for run in runs), 4),
        "runs": [round(run["seconds"], 4) for run in runs],
        "dags": last["dags"],
        "errors": last["errors"],
        "dagbag_import_timeout": last["dagbag_import_timeout"],
    }


def _shown(path: Path) -> str:
    """``dags/retrain.py`` rather than an absolute path, for files of the checkout."""
    resolved = path.resolve()
    return str(resolved.relative_to(PROJECT_ROOT)) if resolved.is_relative_to(PROJECT_ROOT) else str(path)


def airflow_environment(home: Path) -> dict[str, str]:
    """This process's environment, with ``home`` as Airflow's home unless one is set: a user's own
    configuration (and its import timeout) is respected, and a bare run leaves no ``~/airflow``."""
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(home))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return env


def run(files: list[Path], repeats: int, scratch: Path) -> dict[str, Any]:
    """The floor, then every file; the report the JSON holds."""
    env = airflow_environment(scratch / "airflow")
    floor_file = scratch / "floor_dag.py"
    floor_file.write_text(FLOOR_DAG)
    floor = measure(floor_file, repeats, env, name=FLOOR_NAME)
    timeout = floor.pop("dagbag_import_timeout")
    rows = []
    for path in files:
        row = measure(path, repeats, env)
        row.pop("dagbag_import_timeout")
        row["ratio_to_floor"] = round(row["seconds"] / floor["seconds"], 2)
        row["share_of_import_timeout"] = round(row["seconds"] / timeout, 4)
        rows.append(row)
    return {
        "parameters": {
            "repeats": repeats,
            "airflow": metadata.version("apache-airflow"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "dagbag_import_timeout_seconds": timeout,
        "floor": floor,
        "files": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    params, floor = report["parameters"], report["floor"]
    timeout = report["dagbag_import_timeout_seconds"]
    lines = [
        "# DAG parse time",
        "",
        f"Each file parsed by `DagBag` in a fresh interpreter with Airflow {params['airflow']} imported, "
        f"median of {params['repeats']} runs ({params['machine']}, {params['cpus']} CPUs, Python "
        f"{params['python']}, started {params['started_at']}). Floor: a DAG file of one `@task`, parsed the "
        f"same way in the same run: {floor['seconds']:.3f} s. Airflow's `dagbag_import_timeout`: {timeout:g} s.",
        "",
        "| file | DAGs | median s | runs s | x floor | share of import timeout |",
        "|---|---|---:|---|---:|---:|",
        *[
            f"| `{row['file']}` | {', '.join(row['dags']) or 'none'} | {row['seconds']:.3f} | "
            f"{', '.join(f'{s:.3f}' for s in row['runs'])} | {row['ratio_to_floor']:.2f} | "
            f"{row['share_of_import_timeout']:.2%} |"
            for row in report["files"]
        ],
    ]
    broken = [row for row in report["files"] if row["errors"] or not row["dags"]]
    if broken:
        lines += ["", "Files that did not parse:", ""]
        lines += [f"- `{row['file']}`: {row['errors'] or 'no DAG found'}" for row in broken]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dag_parse", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("reports"), help="folder of dag_parse.{json,md}")
    parser.add_argument(
        "--files",
        type=Path,
        nargs="+",
        default=None,
        help="the DAG files to parse (default: every .py file of dags/)",
    )
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help="fresh-interpreter parses per file and of the floor; the median"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    files = args.files or sorted(DAGS_DIR.glob("*.py"))
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    files = [path.resolve() for path in files]  # the parses run from the project root

    with tempfile.TemporaryDirectory(prefix="dag-parse-") as scratch:
        report = run(files, args.repeats, Path(scratch))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dag_parse.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "dag_parse.md").write_text(text)
    print(text)
    return 1 if any(row["errors"] or not row["dags"] for row in report["files"]) else 0


if __name__ == "__main__":
    sys.exit(main())
