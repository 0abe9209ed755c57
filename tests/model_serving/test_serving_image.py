"""The serving image's requirements and packages alone: a venv made of ``requirements-serving.txt`` and
the packages the serving Dockerfile copies (installed, not the source tree; both stages of its build
emulated) serves a forecast, cannot import Airflow, Great Expectations, Evidently or Optuna, and a
registered bundle loads in it with its own code alone: the predict side, nothing of training,
benchmarks or orchestration."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings, child_environment
from tests.utils.images import DOCKERFILES, image_packages
from tests.utils.pods import build
from tests.utils.servers import free_port, server_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXCLUDED = ["airflow", "great_expectations", "evidently", "optuna"]
# Loading a bundle with every package of the platform but model_bundle refused: what it loads is its own.
SELF_CONTAINED = """
import importlib.abc, sys
refused = set(sys.argv[2].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in refused:
            raise ImportError(f"{name} is not part of the bundle")
        return None

sys.meta_path.insert(0, Refuse())
import mlflow

model = mlflow.pyfunc.load_model(sys.argv[1])
forecast = model.predict(model.input_example)
print(forecast.shape, sorted(m.split(".")[0] for m in sys.modules if m.startswith("model_bundle"))[:1])
"""


def forecast_alone(serving_venv: Path, bundle: Path, cwd: Path) -> str:
    """What :data:`SELF_CONTAINED` prints of a bundle's forecast in the serving venv, every platform
    package but model_bundle refused."""
    ours = [p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py") if p.parent.name != "model_bundle"]
    result = subprocess.run(
        [str(serving_venv / "bin" / "python"), "-c", SELF_CONTAINED, str(bundle), ",".join(ours)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def serving_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving image's virtualenv, as its Dockerfile builds it (:func:`tests.utils.pods.build`):
    the distributions ``requirements-serving.txt`` pins and nothing else (a dependency it does not pin
    is missing, not quietly added), then the packages the Dockerfile copies, installed."""
    image = build(DOCKERFILES / "serving.Dockerfile", tmp_path_factory.mktemp("serving-image"))
    return image.venvs["/opt/venv"]


def test_the_serving_image_copies_only_what_the_service_imports() -> None:
    assert sorted(image_packages("serving")) == [
        "configs", "core", "feature_store", "forecast_store", "model_bundle", "model_registry", "model_serving",
    ]  # fmt: skip


def test_the_serving_requirements_leave_out_the_pipeline_tools(serving_venv: Path, tmp_path: Path) -> None:
    check = f"import importlib.util as u; print([m for m in {EXCLUDED!r} if u.find_spec(m)])"
    found = subprocess.run(
        [str(serving_venv / "bin" / "python"), "-c", check], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"


def test_a_venv_of_the_serving_requirements_serves_a_forecast(
    serving_venv: Path, trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    port = free_port()
    env = child_environment(trained[0], serving_port=port, model_poll_seconds=0)
    env["PATH"] = f"{serving_venv / 'bin'}:{env['PATH']}"
    # Run outside the repository: the installed packages must be enough, not the source tree.
    argv = [str(serving_venv / "bin" / "python"), "-m", "model_serving"]
    log = tmp_path / "service.log"
    with server_process(argv, port, timeout=420, log=log, env=env, cwd=tmp_path):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 420
        while (ready := requests.get(f"{base}/health/ready", timeout=5)).status_code != 200:
            assert time.monotonic() < deadline, f"never ready: {ready.text}\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        answer = requests.post(f"{base}/v1/forecast", json={"entity_id": "site_0"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["forecast"]) == trained[1].horizon
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 200


def test_a_bundle_carries_the_predict_side_alone_and_loads_with_it(
    serving_venv: Path, trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    from model_registry import tracking
    from model_registry.provenance import discard, verified_copy
    from model_registry.registry import champion_version

    settings, dataset = trained
    tracking.configure(settings)
    name = settings.model_name(dataset.name)
    version = champion_version(settings, name)
    assert version is not None
    local = verified_copy(settings, name, version)
    try:
        code = local / "code"
        assert [p.name for p in code.iterdir()] == ["model_bundle"]
        shipped = sorted(p.relative_to(code).as_posix() for p in code.rglob("*.py"))
        package = sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "model_bundle").rglob("*.py"))
        assert shipped == package
        assert not [m for m in shipped if any(w in m for w in ("train", "tun", "bench", "launch", "orchestr"))]
        # the point forecast and, per level, its lower and upper bounds: the intervals need nothing else
        columns = dataset.horizon * (1 + 2 * len(dataset.intervals.levels))
        assert forecast_alone(serving_venv, local, tmp_path) == f"(5, {columns}) ['model_bundle']"
    finally:
        discard(local)


def test_a_statistical_bundle_loads_and_forecasts_in_the_serving_venv(
    serving_venv: Path, trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    """A per-series bundle (statsforecast's AutoETS per series) loads with its own code alone in the
    serving image's venv and forecasts its input example: each entity's newest row with its history."""
    from model_registry.provenance import discard, verified_copy
    from model_registry.registry import register_challenger
    from model_training.train import train
    from tests.utils.data import SYNTHETIC_END
    from tests.utils.platform import on_registry_copy

    settings = on_registry_copy(trained[0], tmp_path)
    dataset = trained[1]
    name = settings.model_name(dataset.name)
    version = str(
        register_challenger(settings, name, train(settings, dataset, SYNTHETIC_END, "auto_ets").run_id).version
    )
    local = verified_copy(settings, name, version)
    try:
        columns = dataset.horizon * (1 + 2 * len(dataset.intervals.levels))
        assert forecast_alone(serving_venv, local, tmp_path) == f"(2, {columns}) ['model_bundle']", "a row per entity"
    finally:
        discard(local)
