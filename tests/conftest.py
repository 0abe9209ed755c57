"""Shared fixtures: a small synthetic dataset of the ETT shape, settings under tmp, real servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from configs.dataset import DatasetConfig
from configs.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration once, at first import: point it at a throwaway home before any
# test imports it, so tests never touch a developer's own Airflow.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-test-"))
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
)
ETT_CONFIG = PROJECT_ROOT / "configs" / "datasets" / "ett.yaml"
SYNTHETIC_END = date(2024, 3, 31)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def synthetic_frame(entities: int = 2, days: int = 50, seed: int = 7, end: date = SYNTHETIC_END) -> pd.DataFrame:
    """Hourly series with a daily cycle, a slow trend and noise; loads drive the target."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(end=pd.Timestamp(end) + pd.Timedelta(hours=23), periods=days * 24, freq="h")
    hours = np.arange(len(stamps))
    rows = []
    for e in range(entities):
        load = 10 + 3 * np.sin(2 * np.pi * hours / 24 + e) + rng.normal(0, 0.3, len(hours))
        aux = 5 + np.cos(2 * np.pi * hours / 168) + rng.normal(0, 0.2, len(hours))
        # A persistent but stationary level (AR(1)): a day-old value cannot know it, the latest one
        # does, and its distribution does not drift.
        shocks = rng.normal(0, 0.5, len(hours))
        level = np.zeros(len(hours))
        for i in range(1, len(hours)):
            level[i] = 0.9 * level[i - 1] + shocks[i]
        target = 20 + 0.8 * load + level + rng.normal(0, 0.2, len(hours))
        rows.append(
            pd.DataFrame(
                {
                    "site": f"site_{e}",
                    "ts": stamps.strftime("%Y-%m-%d %H:%M:%S"),
                    "load": load,
                    "aux": aux,
                    "temp": target,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def synthetic_config(source_uri: str) -> dict[str, object]:
    """A long-layout dataset config, small enough to train in seconds."""
    return {
        "name": "synthetic",
        "entity_column": "site",
        "timestamp_column": "ts",
        "frequency": "PT1H",
        "target": "temp",
        "features": ["load", "aux"],
        "horizon": 6,
        "seasonal_period": 24,
        "source": {"layout": "long", "format": "csv", "uri": source_uri},
        "quality": {
            "value_ranges": {"temp": [-50, 150], "load": [-100, 100], "aux": [-100, 100]},
            "max_gap": "PT3H",
            "min_rows": 100,
            "max_rows": 100000,
            "max_age": "P1D",
        },
        "feature_engineering": {"covariate_lags": [0, 1], "rolling_windows": [24], "ttl": "P2D"},
        "promotion": {
            "holdout": "P3D",
            "drift_method": "wasserstein",
            "drift_threshold": 0.5,
            "drift_consecutive_checks": 2,
        },
        "training": {
            "window": "P30D",
            "backtest": {"folds": 2, "test_size": 24, "gap": 6},
            "params": {"xgboost": {"n_estimators": 15, "max_depth": 3, "learning_rate": 0.3}},
        },
    }


def with_regime_change(frame: pd.DataFrame, days: int = 7, load_shift: float = 6.0) -> pd.DataFrame:
    """The last ``days`` of :func:`synthetic_frame` after a step in load, which the target follows."""
    out = frame.copy()
    stamps = pd.to_datetime(out["ts"])
    recent = stamps > stamps.max() - pd.Timedelta(days=days)
    out.loc[recent, "load"] += load_shift
    out.loc[recent, "temp"] += 0.8 * load_shift
    return out


def training_frame(dataset: DatasetConfig) -> pd.DataFrame:
    """Features and labels of :func:`synthetic_frame`, built by the pipeline's functions, time-ordered."""
    from feature_store.features import EVENT_TIMESTAMP, build_features
    from feature_store.training_set import build_labels, label_names

    raw = synthetic_frame()
    raw["ts"] = pd.to_datetime(raw["ts"], utc=True)
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=["site", EVENT_TIMESTAMP])
    return frame.dropna(subset=label_names(dataset)).sort_values(EVENT_TIMESTAMP).reset_index(drop=True)


def split_in_time(frame: pd.DataFrame, share: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    from feature_store.features import EVENT_TIMESTAMP

    cut = frame[EVENT_TIMESTAMP].quantile(share)
    return frame[frame[EVENT_TIMESTAMP] <= cut], frame[frame[EVENT_TIMESTAMP] > cut]


def write_dataset(directory: Path, frame: pd.DataFrame | None = None, source_uri: str | None = None) -> Path:
    """Write the CSV and its config into ``directory``; returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else synthetic_frame()).to_csv(directory / "series.csv", index=False)
    config_path = directory / "synthetic.yaml"
    config_path.write_text(yaml.safe_dump(synthetic_config(source_uri or "series.csv")))
    return config_path


@pytest.fixture
def dataset_path(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "dataset")


@pytest.fixture
def dataset(dataset_path: Path) -> DatasetConfig:
    return DatasetConfig.from_yaml(dataset_path)


@pytest.fixture
def settings(tmp_path: Path, dataset_path: Path) -> Settings:
    """Local sources anywhere under the test's tmp_path (tests write their CSVs there), nowhere else."""
    return Settings(home=tmp_path / "home", dataset_config=dataset_path, source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def logical_date() -> date:
    return SYNTHETIC_END


@contextlib.contextmanager
def server_process(
    argv: list[str], port: int, timeout: float = 30.0, log: Path | None = None, **popen: Any
) -> Iterator[None]:
    """Run a real server binary on ``port`` for the duration of the block; its output goes to ``log``."""
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise RuntimeError(f"{argv[0]} is not installed: run .ci/run (it installs the test servers)")
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT if log else output, **popen)
        try:
            wait_for_port(port, process, timeout=timeout)
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


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


def moto_client(endpoint: str, secret: str = "test") -> Any:
    """A boto3 S3 client of the moto server at ``endpoint`` (moto takes any credentials)."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key=secret, region_name="us-east-1"
    )


def assert_serves_version(client: Any, version: str) -> None:
    """The service (a TestClient) reports ``version`` and answers a forecast with it."""
    assert client.get("/v1/model").json()["version"] == version
    forecast = client.post("/v1/forecast", json={"entity_id": "site_0"})
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["model_version"] == version


def run_data_chain(settings: Settings, dataset: DatasetConfig, logical_date: date) -> None:
    """ingest -> validate -> features -> apply -> materialize, as the demo runs them."""
    from data_pipeline.ingest import ingest
    from data_pipeline.landing import end_of
    from data_pipeline.validation import validate
    from feature_store.features import write_offline_source
    from feature_store.repo import apply, materialize

    ingest(dataset, logical_date, settings)
    validate(dataset, logical_date, settings)
    write_offline_source(settings, dataset, logical_date)
    apply(settings, dataset)
    materialize(settings, dataset, end_of(logical_date))


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DatasetConfig]:
    """The synthetic dataset taken through the whole chain once: a promoted champion, local profile."""
    from model_registry.promotion import promote_version
    from model_registry.registry import register_challenger
    from model_training.train import train
    from model_validation.champion import evaluate_challenger, holdout_of

    root = tmp_path_factory.mktemp("trained")
    config = write_dataset(root / "dataset")
    settings = Settings(home=root / "home", dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    dataset = DatasetConfig.from_yaml(config)
    run_data_chain(settings, dataset, SYNTHETIC_END)
    outcome = train(settings, dataset, SYNTHETIC_END)
    version = register_challenger(settings, settings.model_name(dataset.name), outcome.run_id).version
    holdout = holdout_of(settings, dataset, SYNTHETIC_END)
    decision = evaluate_challenger(settings, dataset, settings.model_name(dataset.name), version, holdout)
    assert decision.passed, decision.reason
    promote_version(settings, settings.model_name(dataset.name), version, decision.reason)
    return settings, dataset


def on_registry_copy(settings: Settings, directory: Path, **update: Any) -> Settings:
    """``settings`` on a copy of their MLflow database in ``directory``: a test's alias moves and runs
    stay in it. The service it starts does not watch the registry (``model_poll_seconds=0``)."""
    import sqlite3

    copy = directory / "mlflow.db"
    with (
        contextlib.closing(sqlite3.connect(settings.home / "mlflow.db")) as source,
        contextlib.closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
    return settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{copy}", "model_poll_seconds": 0, **update})


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[str]:
    """A throwaway Debian ``prometheus-pushgateway`` on a free port."""
    port = free_port()
    with server_process(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"], port):
        yield f"http://127.0.0.1:{port}"


def postgres_bin(name: str) -> str:
    """Debian keeps PostgreSQL's server binaries off PATH, under /usr/lib/postgresql/<major>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    if shutil.which(name):
        return name
    raise RuntimeError(f"PostgreSQL's {name} is not installed: run .ci/run (it installs the test servers)")


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


class PlatformEnv:
    """MLOPS_* variables for a test, applied to os.environ (and undone) with the settings cache cleared."""

    def __init__(self, root: Path, **extra: str):
        self.root = root
        self.datasets = root / "datasets"
        self.config = write_dataset(self.datasets)
        self.home = root / "home"
        self.values = {
            "MLOPS_HOME": str(self.home),
            "MLOPS_DATASETS_DIR": str(self.datasets),
            "MLOPS_DATASET_CONFIG": str(self.config),
            **extra,
        }
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> PlatformEnv:
        from configs.settings import get_settings

        for key in [k for k in os.environ if k.startswith("MLOPS_")]:
            self._saved[key] = os.environ.pop(key)
        for key, value in self.values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        get_settings.cache_clear()
        return self

    def __exit__(self, *exc: object) -> None:
        from configs.settings import get_settings

        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()

    def settings(self) -> Settings:
        from configs.settings import get_settings

        return get_settings()

    def dag(self, dag_id: str):  # type: ignore[no-untyped-def]
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
        assert bag.import_errors == {}
        return bag.get_dag(dag_id)


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
