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

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.heavy]


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
        "every_due_forecast_scored": True,
        "champion_beats_naive": True,
        "every_day_landed_once": True,
        "one_version_per_training_run": True,
        "champion_never_failed_a_gate": True,
    }, "no bad file planned: no refusal check, which could not be false"
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
    assert "| every_due_forecast_scored | yes |" in markdown
    # The source was revealed a day at a time: the copy ends with the last simulated day.
    revealed = (tmp_path / "home" / "datasets" / "sources" / "all.csv").read_text().splitlines()
    assert revealed[-1].split(",")[1].startswith(f"{days[-1]['day']} 23:00")
