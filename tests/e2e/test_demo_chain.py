"""The commands a user runs, as subprocesses: the demo chain, and a bad file stopping it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from tests.utils.data import SYNTHETIC_END, synthetic_frame, write_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _env(home: Path, config: Path) -> dict[str, str]:
    """As on a fresh clone: the demo keeps Airflow's home (and its SQLite database) under MLOPS_HOME,
    not in the test session's Airflow home, whose database this process holds open."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW", "MLFLOW_TRACKING_"))}
    return {**env, "MLOPS_HOME": str(home), "MLOPS_DATASET_CONFIG": str(config)}


def test_demo_script_serves_a_forecast_for_another_dataset(tmp_path: Path) -> None:
    config = write_dataset(tmp_path / "dataset")
    env = {
        **_env(tmp_path / "home", config),
        "PY": sys.executable,
        "DATASET": str(config),  # its daily.history_end is the demo's default date
        "ENTITY": "site_1",
    }
    result = subprocess.run(
        ["bash", "infra/scripts/demo.sh"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out, home = result.stdout, tmp_path / "home"
    # Quiet: a newcomer reads it all. Airflow's, the libraries' and the service's logs went to files.
    assert len(out.splitlines()) < 60, out
    assert result.stderr == "", result.stderr[-3000:]
    log = home / "logs" / "retrain_synthetic_forecaster.log"
    assert f"Airflow's log: {log}" in out
    assert "[DAG TEST]" in log.read_text()
    assert "[DAG TEST]" not in out
    forecast = json.loads((home / "forecast.json").read_text())
    assert forecast["entity_id"] == "site_1"
    assert len(forecast["forecast"]) == 6
    assert forecast["model_name"] == "synthetic_forecaster"
    assert forecast["interval_levels"] == [0.8, 0.95]
    table = re.search(r"step\s+time\s+forecast\s+80% lower\s+80% upper\s+95% lower\s+95% upper\n((.*\n){6})", out)
    assert table, out[-3000:]
    first = forecast["forecast"][0]
    assert table[1].split()[:3] == ["1", first["timestamp"], f"{first['value']:.3f}"]
    assert re.search(r"^retrain_synthetic_forecaster run \S+: success in .*Airflow overhead", out, re.MULTILINE), out
    assert re.search(r"^  promote\s+success", out, re.MULTILINE), out[-3000:]
    # what serves: the judged version refitted on every labelled row (the demo's filter keeps the line)
    assert re.search(
        r"^  served: v2, v1 refitted on every labelled row \(data to \S+\); the gates judged v1$", out, re.MULTILINE
    ), out[-3000:]
    assert re.search(r"GE data docs:\s+\S+/local_site/validations/\S+\.html\n", out), out[-3000:]
    plot = home / "forecast.png"
    assert re.search(rf"forecast plot:\s+{re.escape(str(plot))}\n", out), out[-3000:]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    assert json.loads((home / "logs" / "retrain_timings.json").read_text())["state"] == "success"


def test_a_failed_validation_stops_the_chain_and_writes_nothing_downstream(tmp_path: Path) -> None:
    bad = synthetic_frame()
    bad.loc[[3, 4, 5], "temp"] = 1e6
    config = write_dataset(tmp_path / "dataset", frame=bad)
    env = _env(tmp_path / "home", config)
    common = ["--dataset", str(config), "--logical-date", SYNTHETIC_END.isoformat()]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args, *common],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert run("data_pipeline", "ingest").returncode == 0
    validation = run("data_pipeline", "validate")
    assert validation.returncode == 1
    assert "expect_column_values_to_be_between on temp: 3 of" in validation.stderr
    build = run("feature_store", "build")
    assert build.returncode != 0
    assert "run validate first" in build.stderr
    assert not list((tmp_path / "home").glob("feature_repo/data/*.parquet"))
    assert not (tmp_path / "home" / "mlflow.db").exists()
