"""``make stack-smoke``: the compose stack that ``make up`` starts, driven as its users drive it (not
part of ``make test``: it needs Docker and the images, ``make images``).

A retraining triggered through Airflow's REST API in the stack promotes a champion that MLflow's
registry names; the serving container answers a forecast with it, from the online features in the
stack's Redis, and the stack's PostgreSQL holds that answer; the stack's Prometheus scrapes the
service. Then ``make down`` and ``make up`` again: the champion, the stored answer and the online
features are still there. The stack's own ``.env`` gives the logins."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import requests
from dotenv import dotenv_values

from core.settings import PROJECT_ROOT
from tests.utils.servers import answered

pytestmark = [pytest.mark.stack, pytest.mark.timeout(3600)]

AIRFLOW, MLFLOW, SERVICE, PROMETHEUS = (f"http://127.0.0.1:{port}" for port in (8080, 5000, 8000, 9090))
DAG_ID, MODEL = "retrain_ett_forecaster", "ett_forecaster"
RUN_SECONDS = 1800  # a hang guard: a retraining took about two minutes here


def _stack(action: str) -> None:
    subprocess.run(["bash", str(PROJECT_ROOT / "infra" / "docker" / "stack.sh"), action], check=True, timeout=1800)


def _stored_answers() -> int:
    """Rows the service wrote to the stack's forecast table, read in its PostgreSQL container."""
    container = subprocess.run(
        ["docker", "ps", "--quiet", "--filter", "label=com.docker.compose.project=mlops",
         "--filter", "label=com.docker.compose.service=postgres"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(container) == 1, container
    count = subprocess.run(
        ["docker", "exec", container[0], "psql", "--username", "postgres", "--dbname", "forecasts", "-Atc",
         "SELECT count(*) FROM forecasts WHERE source = 'online'"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(count.strip())


@pytest.fixture(scope="module")
def stack() -> dict[str, str | None]:
    env_file = PROJECT_ROOT / ".env"
    assert env_file.is_file(), "the stack's .env (copy .env.example and set its passwords), as make up needs"
    _stack("up")
    return dotenv_values(env_file)


def _served_version() -> str | None:
    ready = requests.get(f"{SERVICE}/health/ready", timeout=10).json()
    return ready["model_version"] if ready["ready"] else None


def _forecast(entity: str) -> dict[str, Any]:
    answer = requests.post(f"{SERVICE}/v1/forecast", json={"entity_id": entity}, timeout=30)
    assert answer.ok, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_retraining_in_the_stack_is_served_stored_scraped_and_outlives_a_restart(
    stack: dict[str, str | None],
) -> None:
    token = requests.post(
        f"{AIRFLOW}/auth/token", json={"username": "admin", "password": stack["AIRFLOW_ADMIN_PASSWORD"]}, timeout=30
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    dag = f"{AIRFLOW}/api/v2/dags/{DAG_ID}"
    answered(lambda: requests.get(dag, headers=auth, timeout=10).ok, 300, "the retraining DAG parsed")
    requests.patch(dag, json={"is_paused": False}, headers=auth, timeout=30).raise_for_status()
    conf = {"model_family": "xgboost", "n_trials": 1, "reason": "stack smoke"}
    created = requests.post(f"{dag}/dagRuns", json={"logical_date": None, "conf": conf}, headers=auth, timeout=30)
    assert created.ok, created.text
    run = f"{dag}/dagRuns/{created.json()['dag_run_id']}"

    def finished() -> str | None:
        state: str = requests.get(run, headers=auth, timeout=30).json()["state"]
        return state if state in ("success", "failed") else None

    assert answered(finished, RUN_SECONDS, "the retraining run finished") == "success"

    # The registry names the champion; the service loads it by itself (it polls the registry).
    login = (str(stack["MLFLOW_ADMIN_USER"]), str(stack["MLFLOW_ADMIN_PASSWORD"]))
    alias = requests.get(
        f"{MLFLOW}/api/2.0/mlflow/registered-models/alias",
        params={"name": MODEL, "alias": "champion"}, auth=login, timeout=30,
    )  # fmt: skip
    assert alias.ok, alias.text
    champion = alias.json()["model_version"]["version"]
    answered(lambda: _served_version() == champion, 300, f"the service serving version {champion}")

    stored_before = _stored_answers()
    answer = _forecast("ETTh1")
    assert answer["model_version"] == champion
    assert len(answer["forecast"]) == 24
    answered(lambda: _stored_answers() > stored_before, 120, "the answer in the stack's forecast table")

    def scraped() -> bool:
        query = 'sum(forecast_http_request_duration_seconds_count{route="/v1/forecast"})'
        result = requests.get(f"{PROMETHEUS}/api/v1/query", params={"query": query}, timeout=10).json()
        return bool(result["data"]["result"]) and float(result["data"]["result"][0]["value"][1]) >= 1

    answered(scraped, 120, "the service's requests in the stack's Prometheus")

    # Down and up again: named volumes keep the registry, its artifacts, the features and the table.
    stored = _stored_answers()
    _stack("down")
    _stack("up")
    answered(lambda: _served_version() == champion, 300, f"the service serving version {champion} again")
    again = _forecast("ETTh2")
    assert again["model_version"] == champion
    assert _stored_answers() >= stored
