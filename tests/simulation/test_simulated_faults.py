"""``python -m simulation`` with faults, as ``make simulate FAULTS=...`` runs it on the generated dataset
(a module of its own: its five days under faults are the suite's longest test, and a module runs on
one test worker, so it no longer queues behind the two plain days of ``test_simulation.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from tests.utils.data import SYNTHETIC_END, write_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_days_under_faults_keep_every_ledger_check(tmp_path: Path) -> None:
    """The loop on real servers (redis-server, PostgreSQL, S3 on moto, the service under load) while
    a DAG's process is killed mid-task, PostgreSQL restarts in a forecast-table write, a day's file is
    late and another's has bad rows: every day lands once, every forecast is issued and scored once."""
    config = write_dataset(tmp_path / "dataset")
    start = SYNTHETIC_END - timedelta(days=5)
    faults = "kill_task,restart_postgres_forecasts,late_file,bad_rows"
    argv = [sys.executable, "-m", "simulation", "--dataset", str(config), "--start", start.isoformat(), "--days", "5",
            "--faults", faults, "--seed", "3", "--load-rate", "2",
            "--home", str(tmp_path / "home"), "--out", str(tmp_path / "reports")]  # fmt: skip
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1500)
    report = json.loads((tmp_path / "reports" / "simulation.json").read_text())
    assert done.returncode == 0, json.dumps(report.get("checks"), indent=1) + done.stderr[-3000:]

    assert all(report["checks"].values()), report["checks"]
    ledger = {"every_day_landed_once", "refused_days_left_nothing", "one_version_per_training_run",
              "champion_never_failed_a_gate", "every_fault_struck", "every_fault_healed",
              "load_ran_throughout", "every_answered_forecast_stored"}  # fmt: skip
    assert ledger <= report["checks"].keys()
    schedule = {f["kind"]: f for f in report["faults"]["schedule"]}
    assert sorted(schedule) == sorted(faults.split(","))
    days = {d["day"]: d for d in report["days"]}
    assert len({f["day"] for f in schedule.values()}) == 4, "one fault a day, the first day left alone"
    for fault in schedule.values():
        assert fault["injected"], fault
        assert fault["heal_s"] is not None, fault
        assert days[fault["day"]]["failed_dags"] == [], fault
        assert days[fault["day"]]["faults"] == [fault["kind"]]
        assert days[fault["day"]]["rows_landed"] == 2 * 24, fault  # the late day too: landed once it arrived
    assert schedule["kill_task"]["attempts"] == 2, "the killed run was failed, then run again"
    assert schedule["kill_task"]["hit_task"] is not None
    assert schedule["bad_rows"]["attempts"] == 2, "the refused run, then the run of the corrected file"
    assert schedule["late_file"]["attempts"] == 1, "Airflow's retry of the ingest read the late file"
    assert schedule["restart_postgres_forecasts"]["notes"] == [], "the restart cut a write of the forecast table"
    service = report["faults"]["service"]
    assert service["overall"]["requests"] > 0
    assert [w["kind"] for w in service["per_fault"]] == [f["kind"] for f in report["faults"]["schedule"]]
    markdown = (tmp_path / "reports" / "simulation.md").read_text()
    assert "| kill_task |" in markdown
