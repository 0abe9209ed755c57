import pytest
import redis
from fastapi.testclient import TestClient

from configs.dataset import DatasetConfig
from configs.settings import OnlineStoreKind, Settings
from model_serving.app import create_app
from tests.conftest import SYNTHETIC_END, run_data_chain

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_same_forecast_through_redis_as_through_sqlite(
    trained: tuple[Settings, DatasetConfig], redis_server: int
) -> None:
    local, dataset = trained
    on_redis = Settings(
        home=local.home,
        dataset_config=local.dataset_config,
        feast_repo_dir=local.home / "feature_repo_redis",
        online_store=OnlineStoreKind.REDIS,
        redis_host="127.0.0.1",
        redis_port=redis_server,
        redis_password="test-secret",
        _env_file=None,
    )  # type: ignore[call-arg]
    run_data_chain(on_redis, dataset, SYNTHETIC_END)
    keys = redis.Redis(port=redis_server, password="test-secret").dbsize()
    assert keys >= 2  # one hash per entity, written by Feast's materialization

    with TestClient(create_app(local)) as sqlite_client, TestClient(create_app(on_redis)) as redis_client:
        for entity in ("site_0", "site_1"):
            from_sqlite = sqlite_client.post("/v1/forecast", json={"entity_id": entity})
            from_redis = redis_client.post("/v1/forecast", json={"entity_id": entity})
            assert from_sqlite.status_code == from_redis.status_code == 200
            assert from_redis.json() == from_sqlite.json()
        assert redis_client.post("/v1/forecast", json={"entity_id": "nope"}).status_code == 404


def test_redis_without_the_password_is_refused(redis_server: int) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=redis_server).ping()


def test_redis_going_away_gives_503_and_not_ready(trained: tuple[Settings, DatasetConfig], tmp_path) -> None:
    import subprocess

    from tests.conftest import free_port, wait_for_port

    local, dataset = trained
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        settings = Settings(
            home=local.home,
            dataset_config=local.dataset_config,
            feast_repo_dir=tmp_path / "repo",
            online_store=OnlineStoreKind.REDIS,
            redis_host="127.0.0.1",
            redis_port=port,
            _env_file=None,
        )  # type: ignore[call-arg]
        run_data_chain(settings, dataset, SYNTHETIC_END)
        with TestClient(create_app(settings)) as client:
            assert client.get("/health/ready").status_code == 200
            assert client.post("/v1/forecast", json={"entity_id": "site_0"}).status_code == 200
            server.terminate()
            server.wait(timeout=10)
            response = client.post("/v1/forecast", json={"entity_id": "site_0"})
            assert response.status_code == 503
            assert "online store" in response.json()["detail"]
            ready = client.get("/health/ready")
            assert ready.status_code == 503
            assert "online store unreachable" in ready.json()["reason"]
            assert client.get("/health/live").status_code == 200
    finally:
        server.kill()
        server.wait(timeout=10)
