"""``python -m simulation`` as ``make simulate`` runs it, on the generated dataset: two days replayed
through the DAGs, the report's days and checks computed from the stores."""

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


def test_two_simulated_days_forecast_score_and_pass_their_checks(tmp_path: Path) -> None:
    config = write_dataset(tmp_path / "dataset")
    start = SYNTHETIC_END - timedelta(days=2)
    argv = [sys.executable, "-m", "simulation", "--dataset", str(config), "--start", start.isoformat(), "--days", "2",
            "--home", str(tmp_path / "home"), "--out", str(tmp_path / "reports")]  # fmt: skip
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((tmp_path / "reports" / "simulation.json").read_text())
    assert report["checks"] == {
        "no_missing_partition": True,
        "no_duplicate_partition": True,
        "one_forecast_per_entity_per_day": True,
        "every_due_forecast_scored_once": True,
        "champion_beats_naive": True,
        "every_day_landed_once": True,
        "one_version_per_training_run": True,
        "champion_never_failed_a_gate": True,
        "refused_days_left_nothing": True,
    }
    assert "faults" not in report, "no fault asked for: the embedded default, no servers"
    days = report["days"]
    assert [d["day"] for d in days] == [start.isoformat(), (SYNTHETIC_END - timedelta(days=1)).isoformat()]
    for day in days:
        assert day["failed_dags"] == []
        assert day["rows_landed"] == 2 * 24, "one new day of hourly rows for each of two entities"
        assert day["forecasts_issued"] == 2 * 6
        assert day["forecasts_scored"] == 2 * 6, "the day before's forecasts, whose targets the day holds"
        assert day["champion_mae"] is not None
        assert day["naive_mae"] is not None
        assert day["drift_share"] is not None
        assert day["drift_state"] in ("steady", "drifted")
        assert {"retrains", "promotions", "forced_promotions", "wall_s"} <= day.keys()
    loop = report["drift_loop"]
    assert (loop["shift"], loop["shift_day"], loop["forced"]) == ("none", None, False)
    assert loop["drift_triggered_retrains"] == sum(d["retrains"] for d in days)
    markdown = (tmp_path / "reports" / "simulation.md").read_text()
    assert "| every_due_forecast_scored_once | yes |" in markdown
    # The source was revealed a day at a time: the copy ends with the last simulated day.
    revealed = (tmp_path / "home" / "datasets" / "sources" / "all.csv").read_text().splitlines()
    assert revealed[-1].split(",")[1].startswith(f"{days[-1]['day']} 23:00")


def test_days_under_faults_keep_every_ledger_check(tmp_path: Path) -> None:
    """The loop on real servers (redis-server, PostgreSQL, S3 on moto, the service under load) while
    a DAG's process is killed mid-task, PostgreSQL restarts in a forecast-table write, a day's file is
    late and another's has bad rows: every day lands once, every forecast is issued and scored once."""
    config = write_dataset(tmp_path / "dataset")
    start = SYNTHETIC_END - timedelta(days=5)
    faults = "kill_task,restart_postgres_forecasts,late_file,bad_rows"
    argv = [sys.executable, "-m", "simulation", "--dataset", str(config), "--start", start.isoformat(), "--days", "5",
            "--faults", faults, "--seed", "3", "--load-rate", "10",
            "--home", str(tmp_path / "home"), "--out", str(tmp_path / "reports")]  # fmt: skip
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1500)
    report = json.loads((tmp_path / "reports" / "simulation.json").read_text())
    assert done.returncode == 0, json.dumps(report.get("checks"), indent=1) + done.stderr[-3000:]

    assert all(report["checks"].values()), report["checks"]
    ledger = {"every_day_landed_once", "refused_days_left_nothing", "one_version_per_training_run",
              "champion_never_failed_a_gate", "every_fault_struck", "every_fault_healed"}  # fmt: skip
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
