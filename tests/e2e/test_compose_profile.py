"""The ``compose`` profile without containers: the settings docker-compose.yml passes, against the
same kinds of servers started as local processes. PostgreSQL (Debian) holds the MLflow backend, the
Optuna studies and the Feast registry, in the databases and roles made by the compose init script;
``mlflow server`` keeps artifacts in S3 (a moto server) and serves them; Redis with a password is the
online store. The retraining DAG runs on them, then the service answers a forecast from them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from configs.settings import PROJECT_ROOT
from tests.conftest import SYNTHETIC_END, PlatformEnv, free_port, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORDS = {
    "AIRFLOW_DB_PASSWORD": "airflow-pw",
    "MLFLOW_DB_PASSWORD": "mlflow-pw",
    "FEAST_DB_PASSWORD": "feast-pw",
    "OPTUNA_DB_PASSWORD": "optuna-pw",
}
CONF = {"training_window_end": SYNTHETIC_END.isoformat(), "n_trials": 2, "tuning_workers": 2, "reason": "compose"}


@pytest.fixture(scope="module")
def postgres_server(postgres_url: str) -> str:
    """``host:port`` of the test PostgreSQL after the compose init script ran on it (twice: it must be
    safe to run again)."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    env = {**os.environ, **PASSWORDS, "POSTGRES_USER": str(url.username), "PGHOST": str(url.host),
           "PGPORT": str(url.port)}  # fmt: skip
    for _ in range(2):
        subprocess.run(
            ["bash", str(PROJECT_ROOT / "infra" / "compose" / "postgres-init.sh")],
            env=env,
            check=True,
            capture_output=True,
        )
    return f"{url.host}:{url.port}"


def database(server: str, name: str) -> str:
    return f"postgresql+psycopg://{name}:{PASSWORDS[f'{name.upper()}_DB_PASSWORD']}@{server}/{name}"


@pytest.fixture(scope="module")
def mlflow_server(postgres_server: str, moto_endpoint: str) -> Iterator[str]:
    """``mlflow server`` as compose runs it: PostgreSQL backend, S3 artifacts it proxies."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")  # fmt: skip
    s3.create_bucket(Bucket="mlflow")
    port = free_port()
    argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", database(postgres_server, "mlflow"),
            "--artifacts-destination", "s3://mlflow/artifacts", "--serve-artifacts", "--workers", "1"]  # fmt: skip
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "MLFLOW_S3_ENDPOINT_URL": moto_endpoint}  # fmt: skip
    with server_process(argv, port, timeout=180, env=env):
        yield f"http://127.0.0.1:{port}"


def test_the_compose_profile_retrains_and_serves_on_real_servers(
    tmp_path: Path,
    airflow_db: Path,
    postgres_server: str,
    mlflow_server: str,
    moto_endpoint: str,
    redis_server: int,
    pushgateway: str,
) -> None:
    import boto3
    import optuna
    import psycopg
    from fastapi.testclient import TestClient

    from configs.settings import OnlineStoreKind
    from model_registry.tracking import CHAMPION, client
    from model_serving.app import create_app

    compose = {
        "MLOPS_PROFILE": "compose",
        # The compose file's service names, pointed at the local servers.
        "MLOPS_MLFLOW_TRACKING_URI": mlflow_server,
        "MLOPS_REDIS_HOST": "127.0.0.1",
        "MLOPS_REDIS_PORT": str(redis_server),
        "MLOPS_REDIS_PASSWORD": "test-secret",
        "MLOPS_OPTUNA_STORAGE": database(postgres_server, "optuna"),
        "MLOPS_FEAST_REGISTRY": database(postgres_server, "feast"),
        "MLOPS_S3_ENDPOINT_URL": moto_endpoint,
        "MLOPS_AWS_ACCESS_KEY_ID": "test",
        "MLOPS_AWS_SECRET_ACCESS_KEY": "test",
        "MLOPS_PUSHGATEWAY_URL": pushgateway,
    }
    with PlatformEnv(tmp_path, **compose) as env:
        settings = env.settings()
        assert settings.online_store is OnlineStoreKind.REDIS
        assert settings.promotion_lock == "redis"
        run = env.dag("retrain_synthetic_forecaster").test(run_conf=CONF)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances() if ti.state}
        assert states.pop("skip_promotion") == "skipped"
        assert set(states.values()) == {"success"}, states

        champion = client(settings).get_model_version_by_alias("synthetic_forecaster", CHAMPION)
        assert champion.tags["dag_run_id"] == run.run_id

        # Each component's state is where the compose profile puts it.
        s3 = boto3.client("s3", **settings.boto3_client_kwargs())
        stored = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow", Prefix="artifacts/")["Contents"]]
        assert any(key.endswith("MLmodel") for key in stored)
        with psycopg.connect(database(postgres_server, "mlflow").replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT count(*) FROM model_versions").fetchone()[0] >= 1  # type: ignore[index]
        with psycopg.connect(database(postgres_server, "feast").replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT count(*) FROM feature_views").fetchone()[0] == 1  # type: ignore[index]
        studies = optuna.get_all_study_summaries(storage=database(postgres_server, "optuna"))
        assert [s.n_trials for s in studies] == [CONF["n_trials"]]
        assert not (settings.feast_repo / "registry.db").exists()

        # The service, as compose runs it: registry from PostgreSQL, features from Redis, model via MLflow.
        serving = settings.model_copy(update={"model_poll_seconds": 0})
        with TestClient(create_app(serving)) as service:
            assert service.get("/health/ready").status_code == 200
            answer = service.post("/v1/forecast", json={"entity_id": "site_0"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == str(champion.version)
