import contextlib
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from configs.dataset import DatasetConfig
from configs.settings import Settings
from data_pipeline.validation import read_validated
from model_registry.tracking import CHAMPION
from model_registry.tracking import client as registry_client
from model_serving.app import create_app
from tests.conftest import SYNTHETIC_END

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def client(trained: tuple[Settings, DatasetConfig]) -> Iterator[TestClient]:
    # No watching: its registry reads would repoint MLflow's process-wide URIs during the tests below.
    settings = trained[0].model_copy(update={"model_poll_seconds": 0})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def own_registry(tmp_path: Path, trained: tuple[Settings, DatasetConfig]) -> tuple[Settings, DatasetConfig]:
    """The trained settings on this test's own copy of the MLflow database: its alias moves stay here."""
    settings, dataset = trained
    copy = tmp_path / "mlflow.db"
    with (
        contextlib.closing(sqlite3.connect(settings.home / "mlflow.db")) as source,
        contextlib.closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
    update = {"mlflow_tracking_uri": f"sqlite:///{copy}", "model_poll_seconds": 0}
    return settings.model_copy(update=update), dataset


def test_ready_once_the_champion_and_store_are_loaded(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    body = client.get("/health/ready").json()
    assert body["ready"] is True
    assert body["model_name"] == "synthetic_forecaster"
    assert body["model_version"] == "1"


def test_forecast_returns_h_timestamped_values_after_the_features_time(
    client: TestClient, trained: tuple[Settings, DatasetConfig]
) -> None:
    settings, dataset = trained
    response = client.post("/v1/forecast", json={"entity_id": "site_0"})
    assert response.status_code == 200, response.text
    body = response.json()
    newest = read_validated(settings, dataset, SYNTHETIC_END).query("site == 'site_0'")["ts"].max()
    assert pd.Timestamp(body["feature_event_time"]) == newest
    stamps = [pd.Timestamp(p["timestamp"]) for p in body["forecast"]]
    assert stamps == [newest + pd.Timedelta(hours=h) for h in range(1, dataset.horizon + 1)]
    values = [p["value"] for p in body["forecast"]]
    recent = read_validated(settings, dataset, SYNTHETIC_END).query("site == 'site_0'")["temp"].tail(48)
    assert all(recent.min() - 10 < v < recent.max() + 10 for v in values)
    assert body["model_version"] == "1"


def test_batch_answers_each_entity_like_the_single_route(client: TestClient) -> None:
    batch = client.post("/v1/forecast/batch", json={"entity_ids": ["site_0", "site_1"]}).json()["forecasts"]
    assert [f["entity_id"] for f in batch] == ["site_0", "site_1"]
    single = client.post("/v1/forecast", json={"entity_id": "site_1"}).json()
    assert batch[1] == single


def test_unknown_entity_is_404_json(client: TestClient) -> None:
    response = client.post("/v1/forecast", json={"entity_id": "site_99"})
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown entity: site_99"}
    assert client.post("/v1/forecast/batch", json={"entity_ids": ["site_0", "nope"]}).status_code == 404


@pytest.mark.parametrize(
    "body", [{}, {"entity_id": ""}, {"entity": "site_0"}, {"entity_id": 5, "extra": 1}, {"entity_ids": []}]
)
def test_malformed_body_is_422(client: TestClient, body: dict[str, object]) -> None:
    route = "/v1/forecast/batch" if "entity_ids" in body else "/v1/forecast"
    assert client.post(route, json=body).status_code == 422


def test_batch_over_the_limit_is_413(client: TestClient, trained: tuple[Settings, DatasetConfig]) -> None:
    limit = trained[0].max_batch_entities
    response = client.post("/v1/forecast/batch", json={"entity_ids": [f"e{i}" for i in range(limit + 1)]})
    assert response.status_code == 413


def test_metrics_expose_latencies_and_errors(client: TestClient) -> None:
    client.post("/v1/forecast", json={"entity_id": "site_0"})
    client.post("/v1/forecast", json={"entity_id": "missing"})
    text = client.get("/metrics").text
    assert 'forecast_http_request_duration_seconds_count{method="POST",route="/v1/forecast",status="200"}' in text
    assert 'status="404"' in text
    assert "forecast_feature_fetch_duration_seconds_count" in text
    assert "forecast_inference_duration_seconds_count" in text
    assert 'forecast_errors_total{reason="unknown_entity"}' in text
    assert "forecast_model_ready 1.0" in text


def test_no_champion_means_not_ready_and_503(tmp_path: Path, trained: tuple[Settings, DatasetConfig]) -> None:
    settings = Settings(home=tmp_path / "empty", dataset_config=trained[0].dataset_config, _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as empty:
        ready = empty.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert ready.json()["reason"]
        response = empty.post("/v1/forecast", json={"entity_id": "site_0"})
        assert response.status_code == 503
        assert response.json()["detail"].startswith("service not ready")
        assert empty.get("/health/live").status_code == 200
        missing = empty.get("/v1/model")
        assert missing.status_code == 503
        assert missing.json()["detail"].startswith("no model loaded")


def test_model_route_reports_the_champion_and_its_registry_tags(
    client: TestClient, trained: tuple[Settings, DatasetConfig]
) -> None:
    settings, dataset = trained
    name = settings.model_name(dataset.name)
    champion = registry_client(settings).get_model_version_by_alias(name, CHAMPION)
    response = client.get("/v1/model")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["version"]) == (name, "1") == (name, str(champion.version))
    assert body["tags"] == champion.tags
    assert body["tags"]["run_id"] == champion.run_id
    assert datetime.fromisoformat(body["loaded_at"]).tzinfo is not None


def test_champion_moves_are_served_without_a_restart(own_registry: tuple[Settings, DatasetConfig]) -> None:
    settings, dataset = own_registry
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    champion = registry.get_model_version_by_alias(name, CHAMPION)
    again = registry.create_model_version(name, champion.source, run_id=champion.run_id, tags={"note": "again"})
    new = str(again.version)
    watching = settings.model_copy(update={"model_poll_seconds": 0.2})
    with TestClient(create_app(watching)) as app_client:
        before = app_client.get("/v1/model").json()
        assert before["version"] == "1"

        registry.set_registered_model_alias(name, CHAMPION, new)
        promoted = wait_for_version(app_client, new)
        assert promoted["tags"] == {"note": "again"}
        assert datetime.fromisoformat(promoted["loaded_at"]) > datetime.fromisoformat(before["loaded_at"])
        forecast = app_client.post("/v1/forecast", json={"entity_id": "site_0"})
        assert forecast.status_code == 200, forecast.text
        assert forecast.json()["model_version"] == new

        registry.set_registered_model_alias(name, CHAMPION, "1")  # a rollback
        assert wait_for_version(app_client, "1")["tags"] == champion.tags
        assert app_client.post("/v1/forecast", json={"entity_id": "site_0"}).json()["model_version"] == "1"
        assert app_client.app.state.runtime.last_reload_error is None  # type: ignore[attr-defined]


def test_a_champion_that_cannot_load_leaves_the_old_version_serving(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig]
) -> None:
    settings, dataset = own_registry
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    broken = str(registry.create_model_version(name, str(empty)).version)
    with TestClient(create_app(settings)) as app_client:
        runtime = app_client.app.state.runtime  # type: ignore[attr-defined]
        assert runtime.refresh_model() is False  # champion unchanged: nothing to do
        assert runtime.last_reload_error is None

        registry.set_registered_model_alias(name, CHAMPION, broken)
        assert runtime.refresh_model() is False
        assert f"version {broken}" in runtime.last_reload_error
        assert "MLmodel" in runtime.last_reload_error
        assert app_client.get("/v1/model").json()["version"] == "1"
        forecast = app_client.post("/v1/forecast", json={"entity_id": "site_0"})
        assert forecast.status_code == 200, forecast.text
        assert forecast.json()["model_version"] == "1"

        registry.set_registered_model_alias(name, CHAMPION, "1")
        assert runtime.refresh_model() is False
        assert runtime.last_reload_error is None


def wait_for_version(app_client: TestClient, version: str, timeout: float = 30.0) -> dict[str, Any]:
    """``/v1/model`` once it reports ``version`` (the service's watcher picks alias moves up)."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = app_client.get("/v1/model").json()
        if body["version"] == version or time.monotonic() > deadline:
            assert body["version"] == version, f"still serving {body['version']} after {timeout}s"
            return body
        time.sleep(0.1)
