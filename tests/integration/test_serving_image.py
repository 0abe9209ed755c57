"""The serving image's requirements alone: a venv made of ``requirements-serving.txt`` and the
project (installed, not the source tree) serves a forecast, and cannot import Airflow, Great
Expectations, Evidently or Optuna."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from configs.dataset import DatasetConfig
from configs.settings import PROJECT_ROOT, Settings
from tests.conftest import free_port, server_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What the serving Dockerfile copies and installs with --no-deps.
PACKAGES = [
    "configs", "data_pipeline", "feature_store", "model_registry", "model_training", "model_validation",
    "model_serving", "monitoring",
]  # fmt: skip
EXCLUDED = ["airflow", "great_expectations", "evidently", "optuna"]


@pytest.fixture(scope="module")
def serving_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serving-image")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(PROJECT_ROOT / "requirements-serving.txt")], check=True, timeout=1500)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", str(source)], check=True, timeout=300)
    return venv


def test_the_serving_requirements_leave_out_the_pipeline_tools(serving_venv: Path, tmp_path: Path) -> None:
    check = f"import importlib.util as u; print([m for m in {EXCLUDED!r} if u.find_spec(m)])"
    found = subprocess.run(
        [str(serving_venv / "bin" / "python"), "-c", check], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"


def test_a_venv_of_the_serving_requirements_serves_a_forecast(
    serving_venv: Path, trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    from model_serving.benchmark import settings_env

    port = free_port()
    env = settings_env(trained[0], serving_port=port, model_poll_seconds=0)
    env["PATH"] = f"{serving_venv / 'bin'}:{env['PATH']}"
    # Run outside the repository: the installed packages must be enough, not the source tree.
    argv = [str(serving_venv / "bin" / "python"), "-m", "model_serving"]
    with server_process(argv, port, timeout=180, env=env, cwd=tmp_path):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while requests.get(f"{base}/health/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the service of the serving venv never became ready"
            time.sleep(0.5)
        answer = requests.post(f"{base}/v1/forecast", json={"entity_id": "site_0"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["forecast"]) == trained[1].horizon
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 200
