from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from core.dataset import DatasetConfig
from core.settings import OnlineStoreKind, Settings
from model_serving.app import create_app
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import run_data_chain, without_age

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def on_redis(trained: tuple[Settings, DatasetConfig], redis_server: int) -> Settings:
    """The trained home with a Redis online store, materialized by Feast."""
    local, dataset = trained
    settings = Settings(
        home=local.home,
        dataset_config=local.dataset_config,
        feast_repo_dir=local.home / "feature_repo_redis",
        online_store=OnlineStoreKind.REDIS,
        redis_host="127.0.0.1",
        redis_port=redis_server,
        redis_password="test-secret",
        _env_file=None,
    )  # type: ignore[call-arg]
    run_data_chain(settings, dataset, SYNTHETIC_END)
    return settings


def test_the_same_forecast_through_redis_as_through_sqlite(
    trained: tuple[Settings, DatasetConfig], on_redis: Settings, redis_server: int
) -> None:
    local, _ = trained
    keys = redis.Redis(port=redis_server, password="test-secret").dbsize()
    assert keys >= 2  # one hash per entity, written by Feast's materialization
    assert on_redis.online_read_path == "auto"  # -> the direct Redis reader

    with TestClient(create_app(local)) as sqlite_client, TestClient(create_app(on_redis)) as redis_client:
        for entity in ("site_0", "site_1"):
            from_sqlite = sqlite_client.post("/v1/forecast", json={"entity_id": entity})
            from_redis = redis_client.post("/v1/forecast", json={"entity_id": entity})
            assert from_sqlite.status_code == from_redis.status_code == 200
            assert without_age(from_redis.json()) == without_age(from_sqlite.json())
        assert redis_client.post("/v1/forecast", json={"entity_id": "nope"}).status_code == 404


def test_direct_redis_reads_equal_feasts_online_features(
    trained: tuple[Settings, DatasetConfig], on_redis: Settings
) -> None:
    """The direct read path returns exactly what Feast returns for the same keys, every column and time."""
    import pandas as pd

    from core.columns import feature_names
    from feature_store.repo import get_store
    from model_serving.online_features import FeastReader, RedisReader

    _, dataset = trained
    store = get_store(on_redis)
    feast_reader, redis_reader = FeastReader(on_redis, dataset, store), RedisReader(on_redis, dataset, store)
    columns = feature_names(dataset)
    entities = ["site_1", "site_0", "site_1"]
    expected, actual = feast_reader.read(entities, columns), redis_reader.read(entities, columns)
    pd.testing.assert_frame_equal(actual.features, expected.features, check_exact=True)
    assert actual.event_times == expected.event_times
    assert actual.features.notna().all().all()
    first = actual.event_times[0]
    assert first is not None
    assert first > first.replace(year=2000)
    assert actual.histories is None, "no history unless asked for"
    # Each series' history, for per-series models: the same lists and times through both paths, the
    # newest value the features' lag 0, at the features' time.
    expected, actual = (reader.read(entities, columns, history=True) for reader in (feast_reader, redis_reader))
    assert expected.histories is not None
    assert actual.histories is not None
    for theirs, ours in zip(expected.histories, actual.histories, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert actual.history_times == expected.history_times == expected.event_times
    assert [len(h) for h in actual.histories if h is not None] == [dataset.history_length] * 3
    assert [h[-1] for h in actual.histories if h is not None] == actual.features["temp_lag_0"].tolist()
    # An unknown entity read with a known one leaves the known one's row intact.
    for reader in (feast_reader, redis_reader):
        rows = reader.read(["site_0", "nope"], columns, history=True)
        assert rows.unknown == ["nope"]
        assert rows.event_times[0] == actual.event_times[1]
        assert rows.features.iloc[0].notna().all()
        assert rows.features.iloc[1].isna().all()
        assert rows.histories is not None
        assert rows.histories[1] is None


def test_redis_without_the_password_is_refused(redis_server: int) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=redis_server).ping()


def test_redis_stopped_under_load_gives_503_and_the_service_recovers_without_a_restart(
    trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    import subprocess
    import threading
    from collections import Counter

    from tests.utils.servers import free_port, wait_for, wait_for_port

    local, dataset = trained
    port = free_port()
    # append-only file: the restarted server comes back with the features it held
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--dir", str(tmp_path), "--requirepass", "pw"]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        settings = Settings(
            home=local.home,
            dataset_config=local.dataset_config,
            feast_repo_dir=tmp_path / "repo",
            online_store=OnlineStoreKind.REDIS,
            redis_host="127.0.0.1",
            redis_port=port,
            redis_password="pw",
            model_poll_seconds=0,
            _env_file=None,
        )  # type: ignore[call-arg]
        run_data_chain(settings, dataset, SYNTHETIC_END)
        with TestClient(create_app(settings)) as client:
            assert client.get("/health/ready").status_code == 200
            statuses: Counter[int] = Counter()
            errors: list[dict[str, object]] = []
            stop = threading.Event()

            def load() -> None:
                while not stop.is_set():
                    response = client.post("/v1/forecast", json={"entity_id": "site_0"})
                    statuses[response.status_code] += 1
                    if response.status_code != 200:
                        errors.append(response.json())

            driver = threading.Thread(target=load)
            driver.start()
            try:
                # Each step waits for what the assertions below need, however long the machine takes.
                wait_for(lambda: statuses[200] > 0, "a forecast answered (200) before Redis stops")
                server.terminate()
                server.wait(timeout=10)
                wait_for(lambda: statuses[503] > 0, "a forecast refused (503) while Redis is down")
                ready = client.get("/health/ready")  # a live probe: Redis is down now
                assert ready.status_code == 503
                assert "online store unreachable" in ready.json()["reason"]
                assert client.get("/health/live").status_code == 200

                server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
                wait_for_port(port, server)
                wait_for(lambda: client.get("/health/ready").status_code == 200, "ready again after Redis came back")
                served_before = statuses[200]
                wait_for(lambda: statuses[200] > served_before, "a forecast answered (200) after Redis came back")
            finally:
                stop.set()
                driver.join(timeout=30)
            assert statuses[503] > 0
            assert set(statuses) == {200, 503}, statuses
            assert {e["detail"].split(":")[0] for e in errors} == {"online store read failed"}  # type: ignore[union-attr]
            assert statuses[200] > served_before  # answering again, same process, same pool
            assert client.post("/v1/forecast", json={"entity_id": "site_1"}).status_code == 200
    finally:
        server.kill()
        server.wait(timeout=10)
