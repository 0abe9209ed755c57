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
import requests
from pydantic import SecretStr

from core.settings import PROJECT_ROOT
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import PlatformEnv
from tests.utils.servers import free_port, moto_client, postgres_bin, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORDS = {
    "AIRFLOW_DB_PASSWORD": "airflow-pw",
    "MLFLOW_DB_PASSWORD": "mlflow-pw",
    "FEAST_DB_PASSWORD": "feast-pw",
    "OPTUNA_DB_PASSWORD": "optuna-pw",
    "FORECASTS_DB_PASSWORD": "forecasts-pw",
}
MLFLOW_USER, MLFLOW_PASSWORD = "platform", "mlflow-login-password"
S3_SECRET = "s3-secret-access-key"
REDIS_PASSWORD = "test-secret"  # the session redis_server's
ADMIN_TOKEN = "serving-admin-token"
SECRETS = [*PASSWORDS.values(), MLFLOW_PASSWORD, S3_SECRET, REDIS_PASSWORD, ADMIN_TOKEN]
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


def database(server: str, role: str, name: str | None = None) -> str:
    return f"postgresql+psycopg://{role}:{PASSWORDS[f'{role.upper()}_DB_PASSWORD']}@{server}/{name or role}"


@pytest.fixture(scope="module")
def mlflow_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow-server") / "server.log"


@pytest.fixture(scope="module")
def mlflow_server(postgres_server: str, moto_endpoint: str, mlflow_log: Path) -> Iterator[str]:
    """``mlflow server`` as compose runs it: logins required, PostgreSQL backend, S3 artifacts it proxies."""
    s3 = moto_client(moto_endpoint, S3_SECRET)
    for bucket in ("mlflow", "runs", "lake"):  # as the compose file's minio-init makes them
        s3.create_bucket(Bucket=bucket)
    port = free_port()
    argv = ["bash", str(PROJECT_ROOT / "infra" / "compose" / "mlflow-server.sh"), "--host", "127.0.0.1",
            "--port", str(port), "--backend-store-uri", database(postgres_server, "mlflow"),
            "--artifacts-destination", "s3://mlflow/artifacts", "--serve-artifacts", "--workers", "1"]  # fmt: skip
    # The job runner's switch is left to the script, as in the container (the suite turns it off).
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}
    env = {**inherited, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": S3_SECRET,
           "MLFLOW_S3_ENDPOINT_URL": moto_endpoint, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_USER, "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_PASSWORD,
           "MLFLOW_AUTH_DATABASE_URI": database(postgres_server, "mlflow", "mlflow_auth"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-key-for-tests"}  # fmt: skip
    with server_process(argv, port, timeout=180, log=mlflow_log, env=env):
        yield f"http://127.0.0.1:{port}"


def test_the_compose_profile_retrains_and_serves_on_real_servers(
    tmp_path: Path,
    airflow_db: Path,
    postgres_server: str,
    mlflow_server: str,
    mlflow_log: Path,
    moto_endpoint: str,
    redis_server: int,
    pushgateway: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import boto3
    import optuna
    import psutil
    import psycopg
    from fastapi.testclient import TestClient

    from core.settings import OnlineStoreKind
    from model_registry.tracking import CHAMPION, client
    from model_serving.app import create_app

    compose = {
        "MLOPS_PROFILE": "compose",
        # The stack's ray-head is not started here: the steps that map parts of series (the feature
        # build) run in the task. Their Ray runs are test_ray_engine's, on a real cluster.
        "MLOPS_ENGINE": "local",
        # The compose file's service names, pointed at the local servers.
        "MLOPS_MLFLOW_TRACKING_URI": mlflow_server,
        "MLOPS_REDIS_HOST": "127.0.0.1",
        "MLOPS_REDIS_PORT": str(redis_server),
        "MLOPS_REDIS_PASSWORD": "test-secret",
        "MLOPS_OPTUNA_STORAGE": database(postgres_server, "optuna"),
        "MLOPS_FEAST_REGISTRY": database(postgres_server, "feast"),
        "MLOPS_FORECAST_DB": database(postgres_server, "forecasts"),
        "MLOPS_S3_ENDPOINT_URL": moto_endpoint,
        "MLOPS_AWS_ACCESS_KEY_ID": "test",
        "MLOPS_AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "MLOPS_MLFLOW_TRACKING_USERNAME": MLFLOW_USER,
        "MLOPS_MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD,
        "MLOPS_PUSHGATEWAY_URL": pushgateway,
    }
    with PlatformEnv(tmp_path, **compose) as env:
        settings = env.settings()
        assert settings.online_store is OnlineStoreKind.REDIS
        assert settings.promotion_lock == "redis"
        run = env.dag("retrain_synthetic_forecaster").test(run_conf=CONF)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances() if ti.state}
        assert states.pop("skip_promotion") == "skipped"
        assert states.pop("evaluate_candidate") == "skipped", "no candidates to evaluate outside a selection"
        assert set(states.values()) == {"success"}, states
        forecast = env.dag("forecast_synthetic").test()  # the batch forecast into PostgreSQL's forecast table
        assert {str(ti.state) for ti in forecast.get_task_instances()} == {"success"}

        champion = client(settings).get_model_version_by_alias("synthetic_forecaster", CHAMPION)
        assert champion.tags["dag_run_id"] == run.run_id

        # Each component's state is where the compose profile puts it.
        s3 = boto3.client("s3", **settings.boto3_client_kwargs())
        stored = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow", Prefix="artifacts/")["Contents"]]
        assert any(key.endswith("MLmodel") for key in stored)
        # The run's hand-overs between tasks and training processes went through object storage alone.
        handed = {o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(Bucket="runs")["Contents"]}
        assert handed == {
            "dataset.yaml", "training_set.parquet", "training_set.holdout.parquet", "training_set.labelled.parquet",
            "params.json",
        }  # fmt: skip
        assert not list(settings.artifacts.rglob("training_set*.parquet")), "no training set in a local folder"
        assert not list(settings.artifacts.rglob("params.json"))
        # The data the tasks build on too: partitions, the check's result, the feature table.
        lake = {o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]}
        day = f"ds={SYNTHETIC_END.isoformat()}"
        assert {
            f"landing/synthetic/{day}/data.parquet",
            f"validated/synthetic/{day}/data.parquet",
            f"state/synthetic/{day}/validation/validation_result.json",
            "features/synthetic_features.parquet",
            "features/synthetic_history.parquet",
        } <= lake
        assert not list(settings.home.rglob("data.parquet")), "no partition in a local folder"
        with psycopg.connect(database(postgres_server, "mlflow").replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT count(*) FROM model_versions").fetchone()[0] >= 1  # type: ignore[index]
        with psycopg.connect(database(postgres_server, "feast").replace("+psycopg", "")) as conn:
            # the features and each series' history
            assert conn.execute("SELECT count(*) FROM feature_views").fetchone()[0] == 2  # type: ignore[index]
        with psycopg.connect(database(postgres_server, "forecasts").replace("+psycopg", "")) as conn:
            stored = conn.execute("SELECT count(*), count(DISTINCT entity_id) FROM forecasts").fetchone()
            assert stored == (2 * 6, 2)  # every entity, every step of the horizon
        studies = optuna.get_all_study_summaries(storage=database(postgres_server, "optuna"))
        assert [s.n_trials for s in studies] == [CONF["n_trials"]]
        assert not (settings.feast_repo / "registry.db").exists()

        # The service, as compose runs it: registry from PostgreSQL, features from Redis, model via MLflow.
        serving = settings.model_copy(update={"model_poll_seconds": 0, "admin_token": SecretStr(ADMIN_TOKEN)})
        with TestClient(create_app(serving)) as service:
            assert service.get("/health/ready").status_code == 200
            answer = service.post("/v1/forecast", json={"entity_id": "site_0"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == str(champion.version)
            kept = service.get("/v1/forecasts", params={"entity_id": "site_0"})
            assert kept.status_code == 200, kept.text
            assert (kept.json()["data_date"], len(kept.json()["forecast"])) == (SYNTHETIC_END.isoformat(), 6)

    # Logins: the tracking server answers nothing without the platform's password.
    api = f"{mlflow_server}/api/2.0/mlflow/experiments/search"
    assert requests.post(api, json={"max_results": 1}, timeout=30).status_code == 401
    assert (
        requests.post(api, json={"max_results": 1}, auth=(MLFLOW_USER, "not-the-password"), timeout=30).status_code
        == 401
    )
    assert requests.post(api, json={"max_results": 1}, auth=(MLFLOW_USER, MLFLOW_PASSWORD), timeout=30).ok
    # Minutes after its start, the server still runs without MLflow's job runner (its huey consumers).
    auth_db = database(postgres_server, "mlflow", "mlflow_auth")
    consumers = [p.pid for p in psutil.process_iter(["cmdline", "environ"])
                 if "huey_consumer" in " ".join(p.info["cmdline"] or [])
                 and (p.info["environ"] or {}).get("MLFLOW_AUTH_DATABASE_URI") == auth_db]  # fmt: skip
    assert consumers == []

    # No credential is written anywhere the run leaves a trace.
    output = capfd.readouterr()
    places: dict[str, bytes] = {"task and service output": (output.out + output.err).encode()}
    for root in (tmp_path, airflow_db):  # MLOPS_HOME, the Feast repo; Airflow's logs and its database
        places.update({str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()})
    places[str(mlflow_log)] = mlflow_log.read_bytes()
    for name in ("mlflow", "mlflow_auth"):  # every run param, tag, model version and login
        url = database(postgres_server, "mlflow", name).replace("+psycopg", "")
        dump = subprocess.run([postgres_bin("pg_dump"), "--data-only", url], check=True, capture_output=True)
        places[f"database {name}"] = dump.stdout
    s3 = boto3.client("s3", **settings.boto3_client_kwargs())
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow")["Contents"]]:
        places[f"s3://mlflow/{key}"] = s3.get_object(Bucket="mlflow", Key=key)["Body"].read()
    assert len(places) > 20
    leaks = {where: [s for s in SECRETS if s.encode() in content] for where, content in places.items()}
    assert {where: found for where, found in leaks.items() if found} == {}
