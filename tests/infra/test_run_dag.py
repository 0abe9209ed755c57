"""infra/scripts/run_dag.py: a terminal line per task as it finishes, Airflow's output in a log file.

A tiny DAG in a folder of its own (``AIRFLOW__CORE__DAGS_FOLDER``) keeps the runs to seconds; each
run is a subprocess with an Airflow home of its own, as ``make demo`` starts it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "infra" / "scripts"))
from run_dag import without_library_frames

SCRIPT = PROJECT_ROOT / "infra" / "scripts" / "run_dag.py"
TASK_LINE = re.compile(r"^  (\S+)\s+(success|failed|skipped|upstream_failed|removed)\s+(-|\d+\.\d+s)$")

# first prints in three ways (print, logging, a subprocess); slow finishes only once the test has read
# first's line on the terminal (it creates the file RUN_DAG_GO names), so a line printed at the end
# and not as its task finished fails slow; boom fails, so after is upstream_failed; pick is a branch
# that skips one of its two targets.
DAGS = """
import logging
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from airflow.sdk import dag, task

ARGS = dict(schedule=None, start_date=datetime(2024, 1, 1), catchup=False, default_args={"retries": 0})


@dag(dag_id="tiny_fail", **ARGS)
def tiny_fail():
    @task
    def first() -> int:
        print("noise from print")
        logging.getLogger("tiny").warning("noise from logging")
        code = "import sys; print('noise from a subprocess'); print('noise on stderr', file=sys.stderr)"
        subprocess.run([sys.executable, "-c", code], check=True)
        return 1

    @task
    def slow(x: int) -> int:
        go = Path(os.environ["RUN_DAG_GO"])
        deadline = time.monotonic() + 120
        while not go.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("first's line never reached the terminal while the run went on")
            time.sleep(0.1)
        return x

    @task
    def boom(x: int) -> int:
        print("about to fail")
        raise ValueError("the disk is full")

    @task
    def after(x: int) -> None:
        pass

    one = first()
    slow(one) >> after(boom(one))


@dag(dag_id="tiny_ok", **ARGS)
def tiny_ok():
    @task
    def hello() -> None:
        print("hello from a task")

    @task.branch
    def pick() -> str:
        return "taken"

    @task
    def taken() -> None:
        pass

    @task
    def not_taken() -> None:
        pass

    hello() >> pick() >> [taken(), not_taken()]


tiny_fail()
tiny_ok()
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run_dag")
    (root / "dags").mkdir()
    (root / "dags" / "tiny.py").write_text(DAGS)
    return root


def _env(home: Path, **extra: str) -> dict[str, str]:
    """This session's Airflow settings left out: the run migrates and uses <MLOPS_HOME>/airflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW", "VERBOSE"))}
    return {**env, "MLOPS_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), **extra}


def _task_lines(out: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for line in out.splitlines() if (m := TASK_LINE.match(line))]


@pytest.mark.slow
def test_quiet_run_prints_each_task_once_as_it_finishes_and_the_failure_with_its_error(home: Path) -> None:
    report, go = home / "tiny_fail.json", home / "go"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "tiny_fail", "--report", str(report)],
        cwd=PROJECT_ROOT,
        env=_env(home, RUN_DAG_GO=str(go)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    arrived: list[str] = []
    for line in process.stdout:
        arrived.append(line.rstrip("\n"))
        if (match := TASK_LINE.match(arrived[-1])) and match[1] == "first":
            go.touch()  # slow may finish now: first's line came while the run went on
    stderr = process.stderr.read() if process.stderr else ""
    assert process.wait(timeout=300) == 1, arrived
    out = "\n".join(arrived)

    log = home / "logs" / "tiny_fail.log"
    assert arrived[0] == f"tiny_fail: dag.test(), one line per task; Airflow's log: {log}"
    assert sorted(_task_lines(out)) == [
        ("after", "upstream_failed"),
        ("boom", "failed"),
        ("first", "success"),
        ("slow", "success"),
    ], out
    # Live: slow, which waited for first's line on the terminal, succeeded (above).

    # Airflow's logs and everything the tasks printed went to the file, none of it to the terminal.
    text = log.read_text()
    for said in ("noise from print", "noise from logging", "noise from a subprocess", "noise on stderr"):
        assert said in text
        assert said not in out
        assert said not in stderr
    assert "[DAG TEST] starting task_id=first" in text
    assert "[DAG TEST]" not in out
    assert stderr == ""

    # The failure: which task, and the end of its log, so no one has to open the file to see why.
    assert re.search(r"^tiny_fail run manual__\S+: failed in \d+\.\ds", out, re.MULTILINE), out
    assert "\nfailed: boom\n" in out
    tail = out[out.index(f"--- the end of boom's log ({log}):") :].splitlines()[1:]
    assert 0 < len(tail) <= 20
    assert tail[-1] == "  ValueError: the disk is full", tail
    assert any("about to fail" in line for line in tail)
    assert any('raise ValueError("the disk is full")' in line for line in tail)
    assert not any("noise" in line for line in tail)  # first's output is not boom's

    timings = json.loads(report.read_text())
    assert timings["state"] == "failed"
    assert {task: t["state"] for task, t in timings["tasks"].items()} == {
        "first": "success",
        "slow": "success",
        "boom": "failed",
        "after": "upstream_failed",
    }


@pytest.mark.slow
def test_verbose_keeps_everything_on_the_terminal(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "tiny_ok", "--log", str(home / "unused.log")],
        cwd=PROJECT_ROOT,
        env=_env(home, VERBOSE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    both = result.stdout + result.stderr
    assert "hello from a task" in both
    assert "[DAG TEST] starting task_id=hello" in both
    assert not (home / "unused.log").exists()
    assert sorted(_task_lines(result.stdout)) == [
        ("hello", "success"),
        ("not_taken", "skipped"),
        ("pick", "success"),
        ("taken", "success"),
    ], result.stdout
    assert re.search(r"^tiny_ok run manual__\S+: success in ", result.stdout, re.MULTILINE)


def test_a_tracebacks_frames_in_installed_packages_fold_into_one_line() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "/x/.venv/lib/python3.11/site-packages/airflow/a.py", line 1, in run',
        "    result = execute()",
        "             ^^^^^^^^^",
        '  File "/x/.venv/lib/python3.11/site-packages/airflow/b.py", line 2, in execute',
        "    return f()",
        '  File "/repo/dags/tiny.py", line 26, in boom',
        '    raise ValueError("the disk is full")',
        "ValueError: the disk is full",
    ]
    assert without_library_frames(lines) == [
        "Traceback (most recent call last):",
        "    [2 frames in installed packages]",
        '  File "/repo/dags/tiny.py", line 26, in boom',
        '    raise ValueError("the disk is full")',
        "ValueError: the disk is full",
    ]
