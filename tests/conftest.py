"""Fixtures: the synthetic dataset and settings under tmp, real servers, a trained champion.

Helpers that tests import are in ``tests/utils`` (data, servers, the platform under test settings).
"""

from __future__ import annotations

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
from tests.utils.data import SYNTHETIC_END, write_dataset
from tests.utils.platform import run_data_chain
from tests.utils.servers import free_port, postgres_bin, server_process

# Airflow reads its configuration once, at first import: point it at a throwaway home before any
# test imports it, so tests never touch a developer's own Airflow.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-"))
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
)


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
    """The synthetic dataset taken through the whole chain once: a promoted champion, local profile.

    Tests that use these settings with MLflow point it at them first (``tracking.configure``)."""
    from model_registry import tracking
    from model_registry.promotion import promote_version
    from model_registry.registry import register_challenger
    from model_training.train import train
    from model_validation.champion import evaluate_challenger, holdout_of

    root = tmp_path_factory.mktemp("trained")
    config = write_dataset(root / "dataset")
    settings = Settings(home=root / "home", dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    run_data_chain(settings, dataset, SYNTHETIC_END)
    outcome = train(settings, dataset, SYNTHETIC_END)
    version = register_challenger(settings, settings.model_name(dataset.name), outcome.run_id).version
    holdout = holdout_of(settings, dataset, SYNTHETIC_END)
    decision = evaluate_challenger(settings, dataset, settings.model_name(dataset.name), version, holdout)
    assert decision.passed, decision.reason
    promote_version(settings, settings.model_name(dataset.name), version, decision.reason)
    return settings, dataset


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
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway Debian PostgreSQL on a free port; yields a SQLAlchemy URL of an empty database.

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
    """
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, postgres_bin("initdb"), "-D", str(data), "-U", "mlops", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    server = [*as_user, postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1"]
    with server_process([*server, "-k", str(sockets), "-c", "fsync=off"], port, timeout=60):
        import psycopg

        with psycopg.connect(f"postgresql://mlops@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE optuna")
        yield f"postgresql+psycopg://mlops@127.0.0.1:{port}/optuna"
    shutil.rmtree(root, ignore_errors=True)


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
