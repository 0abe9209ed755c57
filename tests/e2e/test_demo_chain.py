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
        "DATASET": str(config),
        "LOGICAL_DATE": SYNTHETIC_END.isoformat(),
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
    out = result.stdout
    start = out.index("{\n")
    forecast = json.loads(out[start : out.index("\n}\n", start) + 2])
    assert forecast["entity_id"] == "site_1"
    assert len(forecast["forecast"]) == 6
    assert forecast["model_name"] == "synthetic_forecaster"
    assert forecast["interval_levels"] == [0.8, 0.95]
    assert re.search(r"step\s+time\s+forecast\s+80% lower\s+80% upper\s+95% lower\s+95% upper\n", out), out[-3000:]
    assert "retrain_synthetic_forecaster run" in out
    assert ": success" in out
    assert re.search(r"promote\s+success", out), out[-3000:]
    assert "Airflow overhead" in out
    assert "validation_result.json" in out
    plot = tmp_path / "home" / "forecast.png"
    assert f"forecast plot:    {plot}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mlflow ui --backend-store-uri sqlite:///" in out


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
