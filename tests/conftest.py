"""Fixtures: the synthetic dataset and settings under tmp, real servers, a trained champion.

Helpers that tests import are in ``tests/utils`` (data, servers, the platform under test settings).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings
from harness.servers import postgres
from tests.utils.data import SYNTHETIC_END, write_dataset
from tests.utils.platform import promote_a_champion, trained_settings
from tests.utils.servers import free_port, server_process
from tests.utils.shared import made_once, run_folder

# Airflow reads its configuration once, at first import: point it at a throwaway home before any
# test imports it, so tests never touch a developer's own Airflow.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)  # each test process's own, gone with it
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
)
# Every ``mlflow server`` a test starts inherits this: as in compose (infra/compose/mlflow-server.sh),
# without MLflow's job runner (about ten huey consumer processes per server, for GenAI jobs the
# platform never submits).
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with at most ``TEST_HEAVY_LIMIT`` (default 2) ``heavy`` modules at once
    (``tests/utils/scheduling.py``); other distributions are xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.utils.scheduling import HeavyLimitedScheduling

    limit = int(os.environ.get("TEST_HEAVY_LIMIT", "2"))
    return HeavyLimitedScheduling(config, log, config._tmp_path_factory.getbasetemp(), limit)  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first, and a ``scenario`` module's steps in the order written.

    pytest-xdist hands the workers whole files in collection order (``--dist loadfile``): files
    marked ``longest``, then those whose tests run whole chains (``e2e``), then the other slow ones,
    then the rest, so that no long file starts last and runs alone at the end. Within a class the
    order stays as collected, shuffled where pytest-randomly ran first (``make test-random``), which
    leaves a module's tests together.
    A ``scenario`` module is one story on one environment (a retraining, then the drift that follows
    it...): its steps are put back in the order written, at the places the shuffle gave them."""
    weights: dict[Any, int] = {}
    scenarios: dict[Any, list[int]] = {}
    for index, item in enumerate(items):
        markers = ("longest", "e2e", "slow")
        weight = next((rank for rank, name in enumerate(markers) if item.get_closest_marker(name)), len(markers))
        weights[item.module] = min(weight, weights.get(item.module, weight))
        if item.get_closest_marker("scenario") is not None:
            scenarios.setdefault(item.module, []).append(index)
    for places in scenarios.values():
        written = sorted((items[i] for i in places), key=lambda item: item.location[1] or 0)
        for place, item in zip(places, written, strict=True):
            items[place] = item
    items.sort(key=lambda item: weights[item.module])  # stable: each module's tests stay together, in order
    if hasattr(config, "workerinput"):  # an xdist worker: the controller's scheduler reads which modules are heavy
        from tests.utils.scheduling import write_heavy_modules

        write_heavy_modules(run_folder(config._tmp_path_factory), items)  # type: ignore[attr-defined]


@pytest.fixture
def dataset_path(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "dataset")


@pytest.fixture
def dataset(dataset_path: Path) -> DatasetConfig:
    return DatasetConfig.from_yaml(dataset_path)


@pytest.fixture
def settings(tmp_path: Path, dataset_path: Path) -> Settings:
    """Local sources anywhere under the test's tmp_path (tests write their CSVs there), nowhere else;
    MLflow pointed at the test's own registry."""
    from model_registry import tracking

    settings = Settings(home=tmp_path / "home", dataset_config=dataset_path, source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    return settings


@pytest.fixture
def logical_date() -> date:
    return SYNTHETIC_END


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DatasetConfig]:
    """The synthetic dataset taken through the whole chain once per test run: a promoted champion,
    local profile. One worker trains it, the others wait for it and read it (``made_once``); each
    worker's forecast table is its own, so services that store their answers never share one.

    Tests that use these settings with MLflow point it at them first (``tracking.configure``)."""
    from model_registry import tracking

    root = made_once(tmp_path_factory, "trained", promote_a_champion)
    own_table = tmp_path_factory.mktemp("forecasts") / "forecasts.db"
    settings = trained_settings(root).model_copy(update={"forecast_db": f"sqlite:///{own_table}"})
    tracking.configure(settings)
    return settings, DatasetConfig.from_yaml(settings.dataset_config)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[int]:
    """A throwaway ``redis-server`` on a free port, with a password, no persistence."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with server_process([*argv, "--requirepass", "test-secret"], port):
        yield port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server over real HTTP on a free port."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    with server_process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, 60, env=env):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[str]:
    """A throwaway Debian ``prometheus-pushgateway`` on a free port."""
    port = free_port()
    with server_process(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"], port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def prometheus(pushgateway: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway Debian ``prometheus`` scraping the test Pushgateway every second."""
    root = tmp_path_factory.mktemp("prometheus")
    target = pushgateway.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [target]}]}
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        "prometheus",
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with server_process(argv, port, timeout=60):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway Debian PostgreSQL on a free port; yields a SQLAlchemy URL of an empty database."""
    with postgres(("optuna",)) as port:
        yield f"postgresql+psycopg://mlops@127.0.0.1:{port}/optuna"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database (SQLite) in the throwaway AIRFLOW_HOME, migrated once."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return AIRFLOW_HOME


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Debian chromium for one UI check (``tests/utils/browser.py``). Per test, not per
    session: Playwright's sync API keeps an asyncio loop running in this thread while it is open,
    and later tests that call ``asyncio.run()`` would refuse to start (a launch takes about a second)."""
    from playwright.sync_api import sync_playwright

    from tests.utils.browser import launch

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()
