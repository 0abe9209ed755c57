import re
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from benchmarks.serving.servers import register_point_only
from core.dataset import DatasetConfig
from core.partitions import read_validated
from core.settings import Settings
from model_registry.provenance import BUNDLE_DIGEST_TAG, bundle_digest
from model_registry.tracking import CHAMPION
from model_registry.tracking import client as registry_client
from model_serving.app import create_app
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import assert_serves_version, on_registry_copy, without_age

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
    return on_registry_copy(trained[0], tmp_path), trained[1]


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
    assert without_age(batch[1]) == without_age(single)


def metric(client: TestClient, sample: str, **labels: str) -> float:
    """The service's current value of one sample (summed over the series matching ``labels``); known
    label values start at 0, so tests compare before and after."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


def batch_counts(client: TestClient) -> tuple[float, float]:
    """(batches computed, entities in them) so far, from the service's own histogram."""
    return metric(client, "forecast_batch_entities_count"), metric(client, "forecast_batch_entities_sum")


def test_concurrent_requests_are_batched_and_each_answered_as_if_alone(client: TestClient) -> None:
    """Requests computed together get exactly their own answers; an unknown entity fails only its request."""
    from concurrent.futures import ThreadPoolExecutor

    alone = {e: without_age(client.post("/v1/forecast", json={"entity_id": e}).json()) for e in ("site_0", "site_1")}
    entities = ["site_0", "site_1", "site_99"] * 40
    batches_before, entities_before = batch_counts(client)
    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(lambda e: client.post("/v1/forecast", json={"entity_id": e}), entities))
    for entity, response in zip(entities, responses, strict=True):
        if entity == "site_99":
            assert (response.status_code, response.json()) == (404, {"detail": "unknown entity: site_99"})
        else:
            assert response.status_code == 200
            assert without_age(response.json()) == alone[entity]
    batches, computed = batch_counts(client)
    assert computed - entities_before == len(entities)
    assert batches - batches_before < len(entities)  # some requests shared a batch


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
    unknown_before = metric(client, "forecast_errors_total", reason="unknown_entity")
    client.post("/v1/forecast", json={"entity_id": "site_0"})
    client.post("/v1/forecast", json={"entity_id": "missing"})
    assert metric(client, "forecast_errors_total", reason="unknown_entity") == unknown_before + 1
    text = client.get("/metrics").text
    assert 'forecast_http_request_duration_seconds_count{method="POST",route="/v1/forecast",status="200"}' in text
    assert 'status="404"' in text
    assert "forecast_feature_fetch_duration_seconds_count" in text
    assert "forecast_inference_duration_seconds_count" in text
    assert "forecast_model_ready 1.0" in text


def test_no_champion_means_not_ready_and_503(tmp_path: Path, trained: tuple[Settings, DatasetConfig]) -> None:
    settings = Settings(home=tmp_path / "empty", dataset_config=trained[0].dataset_config, _env_file=None)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as empty:
        ready = empty.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        # a stable reason and an error id: MLflow's words about the missing alias stay in the log
        assert ready.json()["reason"] == "no model loaded", ready.json()
        assert re.fullmatch(r"[0-9a-f]{12}", ready.json()["error_id"]), ready.json()
        response = empty.post("/v1/forecast", json={"entity_id": "site_0"})
        assert response.status_code == 503
        # A stable message and an error id; the cause (here MLflow's words about the missing alias,
        # elsewhere hosts, paths and versions) is in the service's log under that id, not in the answer.
        body = response.json()
        assert body["detail"] == "service not ready"
        assert re.fullmatch(r"[0-9a-f]{12}", body["error_id"]), body
        assert empty.get("/health/live").status_code == 200
        missing = empty.get("/v1/model")
        assert missing.status_code == 503
        assert missing.json()["detail"] == "no model loaded"
        assert missing.json()["error_id"] != body["error_id"]


def test_model_route_reports_the_champion_and_its_tags_only_to_an_admin(
    trained: tuple[Settings, DatasetConfig],
) -> None:
    """A client learns which version answers, its family, window and band levels; the registry's tags
    (paths of data checks, gate reasons, lineage) answer only to the admin token."""
    settings, dataset = trained
    name = settings.model_name(dataset.name)
    champion = registry_client(settings).get_model_version_by_alias(name, CHAMPION)
    guarded = settings.model_copy(update={"admin_token": SecretStr("s3cret-token")})
    with TestClient(create_app(guarded)) as serving:
        response = serving.get("/v1/model")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["name"], body["version"]) == (name, "1") == (name, str(champion.version))
        start, end = champion.tags["data_window"].split("/")
        assert (body["trained_from"], body["trained_to"]) == (start, end)
        assert body["family"] == "xgboost"
        assert body["interval_levels"] == [0.8, 0.95]
        assert datetime.fromisoformat(body["loaded_at"]).tzinfo is not None
        fields = {"name", "version", "family", "loaded_at", "trained_from", "trained_to", "interval_levels"}
        assert set(body) == fields, "no registry tags: no paths, gate reasons or lineage"
        assert serving.get("/admin/model").status_code == 401
        detail = serving.get("/admin/model", headers={"Authorization": "Bearer s3cret-token"})
        assert detail.status_code == 200, detail.text
        assert detail.json()["tags"] == champion.tags
        assert detail.json()["tags"]["run_id"] == champion.run_id


def test_champion_moves_are_served_without_a_restart(own_registry: tuple[Settings, DatasetConfig]) -> None:
    settings, dataset = own_registry
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    champion = registry.get_model_version_by_alias(name, CHAMPION)
    tags = {"note": "again", BUNDLE_DIGEST_TAG: champion.tags[BUNDLE_DIGEST_TAG]}  # the same files: their digest
    again = registry.create_model_version(name, champion.source, run_id=champion.run_id, tags=tags)
    new = str(again.version)
    watching = settings.model_copy(update={"model_poll_seconds": 0.2, "admin_token": SecretStr("t0ken")})
    admin = {"Authorization": "Bearer t0ken"}
    with TestClient(create_app(watching)) as app_client:
        before = app_client.get("/v1/model").json()
        assert before["version"] == "1"

        registry.set_registered_model_alias(name, CHAMPION, new)
        promoted = wait_for_version(app_client, new)
        assert app_client.get("/admin/model", headers=admin).json()["tags"] == tags
        assert datetime.fromisoformat(promoted["loaded_at"]) > datetime.fromisoformat(before["loaded_at"])
        forecast = app_client.post("/v1/forecast", json={"entity_id": "site_0"})
        assert forecast.status_code == 200, forecast.text
        assert forecast.json()["model_version"] == new

        registry.set_registered_model_alias(name, CHAMPION, "1")  # a rollback
        wait_for_version(app_client, "1")
        assert app_client.get("/admin/model", headers=admin).json()["tags"] == champion.tags
        assert app_client.post("/v1/forecast", json={"entity_id": "site_0"}).json()["model_version"] == "1"
        assert app_client.app.state.runtime.last_reload_error is None  # type: ignore[attr-defined]


def test_following_the_champion_writes_nothing_to_a_read_only_registry_or_home(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service reads a registry it may not write (SQLite opened read-only) from a home that does not
    exist: it loads the champion and follows a promotion, and its poll creates no folder and no
    experiment (the settings name an experiment the registry does not have)."""
    settings, dataset = own_registry
    name = settings.model_name(dataset.name)
    writer = registry_client(settings)
    experiments = sorted(e.name for e in writer.search_experiments())
    assert "served-only" not in experiments
    database = settings.tracking_uri.removeprefix("sqlite:///")
    home = tmp_path / "no-home"
    reader = settings.model_copy(
        update={
            "home": home,
            "mlflow_tracking_uri": f"sqlite:///file:{database}?mode=ro&uri=true",
            "mlflow_experiment": "served-only",
            "model_artifact_roots": [(settings.home / "mlartifacts").as_uri()],
            # the one folder the service writes: its ledger's spool, where the settings put it
            "forecast_ledger_spool": tmp_path / "spool",
        }
    )
    # MLflow makes the "parent folder" of a SQLite URI's path before it connects, and takes
    # ``file:/…?mode=ro`` for a relative path: a ``file:`` folder appears in the working directory.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    champion = writer.get_model_version_by_alias(name, CHAMPION)
    tags = {BUNDLE_DIGEST_TAG: champion.tags[BUNDLE_DIGEST_TAG]}
    new = str(writer.create_model_version(name, champion.source, run_id=champion.run_id, tags=tags).version)
    with TestClient(create_app(reader)) as app_client:
        runtime = app_client.app.state.runtime  # type: ignore[attr-defined]
        assert_serves_version(app_client, "1")
        assert runtime.refresh_model() is False
        writer.set_registered_model_alias(name, CHAMPION, new)  # another process promotes
        assert runtime.refresh_model() is True, runtime.last_reload_error
        assert_serves_version(app_client, new)
    assert not home.exists(), "the service created its home"
    assert sorted(e.name for e in writer.search_experiments()) == experiments
    assert "served-only" not in experiments


def test_stored_forecasts_are_answered_as_they_were_issued(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig]
) -> None:
    """The day's batch forecast of every entity goes to the forecast table, and ``/v1/forecasts`` answers
    it unchanged: the steps from the features' event time, the values the champion gave then."""
    from model_serving.batch import issue_day

    settings, dataset = own_registry
    settings = settings.model_copy(update={"forecast_db": f"sqlite:///{tmp_path / 'forecasts.db'}"})
    with TestClient(create_app(settings)) as app_client:
        assert app_client.get("/v1/forecasts", params={"entity_id": "site_0"}).status_code == 404  # none yet
        issued = issue_day(settings, dataset, SYNTHETIC_END, dag_run_id="manual__test")
        assert (issued.entities, issued.rows, issued.model_version) == (2, 2 * dataset.horizon, "1")
        stored = app_client.get("/v1/forecasts", params={"entity_id": "site_0"})
        assert stored.status_code == 200, stored.text
        online = app_client.post("/v1/forecast", json={"entity_id": "site_0"}).json()
        body = stored.json()
        assert (body["data_date"], body["model_version"], body["source"]) == (SYNTHETIC_END.isoformat(), "1", "batch")
        assert body["issue_time"] == online["feature_event_time"]  # the newest features of the day, as online
        assert [p["timestamp"] for p in body["forecast"]] == [p["timestamp"] for p in online["forecast"]]
        assert [p["value"] for p in body["forecast"]] == pytest.approx([p["value"] for p in online["forecast"]])
        # the bands as issued: the same as the live answer's, its entity's own
        bands = [v for p in body["forecast"] for b in p["intervals"] for v in (b["level"], b["lower"], b["upper"])]
        live = [v for p in online["forecast"] for b in p["intervals"] for v in (b["level"], b["lower"], b["upper"])]
        assert len(bands) == 3 * 2 * dataset.horizon
        assert bands == pytest.approx(live)
        again = issue_day(settings, dataset, SYNTHETIC_END)  # a re-run of the day replaces its rows
        assert again.rows == issued.rows
        day = app_client.get("/v1/forecasts", params={"entity_id": "site_1", "issued": SYNTHETIC_END.isoformat()})
        assert len(day.json()["forecast"]) == dataset.horizon
        missing = app_client.get("/v1/forecasts", params={"entity_id": "site_0", "issued": "2024-01-01"})
        assert missing.status_code == 404
        assert "no stored forecast of site_0 issued on 2024-01-01" in missing.json()["detail"]


def test_the_forecast_table_is_free_while_the_days_bundles_load(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a version's bundle takes seconds (tens on a busy machine): on SQLite, a load inside
    the day's transaction would hold the database's write lock as long, and the service's ledger
    writer, the scoring or a person's query would wait past their busy timeout. While each bundle
    loads, another connection takes the write lock at once."""
    import sqlite3

    from model_serving import batch

    settings, dataset = own_registry
    database = tmp_path / "forecasts.db"
    settings = settings.model_copy(update={"forecast_db": f"sqlite:///{database}"})
    loaded = batch._Loaded.model
    taken: list[str] = []

    def load_and_write_meanwhile(self: batch._Loaded, settings: Settings, name: str, version: str) -> object:
        if (settings.tracking_uri, name, version) not in self._held:  # a load, not the cache
            with sqlite3.connect(database, timeout=0) as other:  # no wait: the lock is free or this raises
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            taken.append(version)
        return loaded(self, settings, name, version)

    monkeypatch.setattr(batch._Loaded, "model", load_and_write_meanwhile)
    issued = batch.issue_day(settings, dataset, SYNTHETIC_END)
    assert issued.rows == 2 * dataset.horizon
    batch.issue_day(settings, dataset, SYNTHETIC_END)  # again: the table holds a day while the bundle loads
    assert taken == ["1", "1"], "the champion loaded once a day, the table free meanwhile"


def test_a_newer_challenger_forecasts_in_the_champions_shadow_and_a_broken_one_is_left_out(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig]
) -> None:
    """The day's batch forecast stores, next to the champion's, the forecasts of a newer challenger from
    the same features (source shadow); a shadow that cannot load is left out, never the champion."""
    from forecast_store import store
    from forecast_store.schema import SHADOW
    from model_registry.tracking import CHALLENGER
    from model_serving.batch import issue_day

    settings, dataset = own_registry
    settings = settings.model_copy(update={"forecast_db": f"sqlite:///{tmp_path / 'forecasts.db'}"})
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    champion = registry.get_model_version(name, "1")
    twin = str(registry.create_model_version(name, champion.source, run_id=champion.run_id, tags=champion.tags).version)
    registry.set_registered_model_alias(name, CHALLENGER, twin)

    issued = issue_day(settings, dataset, SYNTHETIC_END)
    assert issued.shadow_versions == [twin]
    assert issued.rows == 2 * 2 * dataset.horizon
    batch = store.issued(settings, dataset.name, data_date=SYNTHETIC_END)
    shadow = store.issued(settings, dataset.name, data_date=SYNTHETIC_END, source=SHADOW)
    assert {r.model_version for r in shadow} == {twin}
    assert [(r.entity_id, r.step, r.target_time) for r in shadow] == [
        (r.entity_id, r.step, r.target_time) for r in batch
    ]
    assert [r.value for r in shadow] == pytest.approx([r.value for r in batch])  # the same bundle, the same rows

    def stored() -> list[tuple[object, ...]]:
        return [
            (r.source, r.model_version, r.entity_id, r.step, r.target_time, r.value, r.intervals)
            for source in ("batch", SHADOW)
            for r in store.issued(settings, dataset.name, data_date=SYNTHETIC_END, source=source)
        ]

    whole = stored()
    one_at_a_time = issue_day(settings, dataset, SYNTHETIC_END, per_part=1)  # each entity a part of its own
    assert (one_at_a_time.entities, one_at_a_time.rows, one_at_a_time.shadow_versions) == (
        issued.entities,
        issued.rows,
        [twin],
    )
    assert stored() == whole, "forecast a part of entities at a time: the same rows, values and bands"

    broken = register_broken_version(registry, name, settings, tmp_path)
    registry.set_registered_model_alias(name, CHALLENGER, broken)
    again = issue_day(settings, dataset, SYNTHETIC_END)
    assert (again.shadow_versions, again.rows, again.model_version) == ([], 2 * dataset.horizon, "1")
    assert store.issued(settings, dataset.name, data_date=SYNTHETIC_END, source=SHADOW) == []


def test_a_champion_that_cannot_load_leaves_the_old_version_serving(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig]
) -> None:
    settings, dataset = own_registry
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    broken = register_broken_version(registry, name, settings, tmp_path)
    with TestClient(create_app(settings)) as app_client:
        runtime = app_client.app.state.runtime  # type: ignore[attr-defined]
        assert runtime.refresh_model() is False  # champion unchanged: nothing to do
        assert runtime.last_reload_error is None

        registry.set_registered_model_alias(name, CHAMPION, broken)
        assert runtime.refresh_model() is False
        assert f"version {broken}" in runtime.last_reload_error
        assert "MLmodel" in runtime.last_reload_error
        assert_serves_version(app_client, "1")

        registry.set_registered_model_alias(name, CHAMPION, "1")
        assert runtime.refresh_model() is False
        assert runtime.last_reload_error is None


def test_a_service_keeps_one_bundle_copy_and_removes_it_when_let_go(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each load makes a private local copy of the bundle: the service keeps the served version's
    alone, removing the previous one at a swap, a version that cannot load leaves none, and the
    last goes at shutdown (a service that follows the champion for months does not fill its disk)."""
    copies = tmp_path / "tmp"
    copies.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(copies))  # where this test's copies are made
    settings, dataset = own_registry
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    champion = registry.get_model_version(name, "1")
    twin = str(registry.create_model_version(name, champion.source, run_id=champion.run_id, tags=champion.tags).version)
    broken = register_broken_version(registry, name, settings, tmp_path)
    with TestClient(create_app(settings)) as app_client:
        runtime = app_client.app.state.runtime  # type: ignore[attr-defined]
        first = runtime.model.files
        assert [p.name for p in copies.iterdir()] == [first.parent.name]
        registry.set_registered_model_alias(name, CHAMPION, twin)
        assert runtime.refresh_model() is True, runtime.last_reload_error
        assert [p.name for p in copies.iterdir()] == [runtime.model.files.parent.name] != [first.parent.name]
        registry.set_registered_model_alias(name, CHAMPION, broken)
        assert runtime.refresh_model() is False
        assert [p.name for p in copies.iterdir()] == [runtime.model.files.parent.name], "the failed load's copy"
        assert_serves_version(app_client, twin)
    assert list(copies.iterdir()) == []


def register_broken_version(registry: Any, name: str, settings: Settings, tmp_path: Path) -> str:
    """A registry version whose source is an empty folder in the registry's store, with its digest: it
    passes the provenance checks, but cannot load."""
    empty = settings.home / "mlartifacts" / "not_a_model" / tmp_path.name
    empty.mkdir(parents=True)
    return str(registry.create_model_version(name, str(empty), tags={BUNDLE_DIGEST_TAG: bundle_digest(empty)}).version)


def wait_for_version(app_client: TestClient, version: str, timeout: float = 30.0) -> dict[str, Any]:
    """``/v1/model`` once it reports ``version`` (the service's watcher picks alias moves up)."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = app_client.get("/v1/model").json()
        if body["version"] == version or time.monotonic() > deadline:
            assert body["version"] == version, f"still serving {body['version']} after {timeout}s"
            return body
        time.sleep(0.1)


def test_features_older_than_the_ttl_are_flagged_or_refused(trained: tuple[Settings, DatasetConfig]) -> None:
    settings, dataset = trained
    ttl = dataset.feature_engineering.ttl.total_seconds()
    with TestClient(create_app(settings.model_copy(update={"model_poll_seconds": 0}))) as serving:
        served_before = metric(serving, "forecast_stale_features_total", action="served")
        body = serving.post("/v1/forecast", json={"entity_id": "site_0"}).json()
        newest = datetime.fromisoformat(body["feature_event_time"])
        assert body["feature_age_seconds"] == pytest.approx(
            (datetime.now(newest.tzinfo) - newest).total_seconds(), abs=60
        )
        assert body["feature_age_seconds"] > ttl  # the synthetic data ends in 2024
        assert body["stale"] is True
        assert metric(serving, "forecast_stale_features_total", action="served") == served_before + 1
    refusing = settings.model_copy(update={"model_poll_seconds": 0, "stale_features": "refuse"})
    with TestClient(create_app(refusing)) as serving:
        refused_before = metric(serving, "forecast_stale_features_total", action="refused")
        stale_errors_before = metric(serving, "forecast_errors_total", reason="stale_features")
        response = serving.post("/v1/forecast", json={"entity_id": "site_0"})
        assert response.status_code == 503
        assert response.json()["detail"].startswith("stale features for site_0: older than the feature view's TTL")
        assert metric(serving, "forecast_stale_features_total", action="refused") == refused_before + 1
        assert metric(serving, "forecast_errors_total", reason="stale_features") == stale_errors_before + 1


def test_metrics_tell_the_version_predictions_and_feature_age(client: TestClient) -> None:
    client.post("/v1/forecast", json={"entity_id": "site_0"})
    text = client.get("/metrics").text
    assert 'forecast_model_info{model="synthetic_forecaster",version="1"} 1.0' in text
    assert "forecast_prediction_value_count" in text
    assert "forecast_feature_age_seconds_count" in text


def test_bodies_over_the_limit_are_413_json(trained: tuple[Settings, DatasetConfig]) -> None:
    # One entity per batch: the smallest byte limit the settings allow (derived, 3,092 bytes).
    settings = Settings.model_validate(
        {**trained[0].model_dump(), "model_poll_seconds": 0, "max_batch_entities": 1, "max_request_bytes": None}
    )
    limit = settings.request_body_limit
    with TestClient(create_app(settings)) as serving:
        big = {"entity_id": "x" * limit}
        declared = serving.post("/v1/forecast", json=big)
        assert declared.status_code == 413
        assert declared.json() == {"detail": f"request body larger than {limit} bytes"}
        chunk = b'{"entity_ids": [' + b'"site_0",' * 100
        chunks = (chunk for _ in range(limit // len(chunk) + 1))  # chunked: no Content-Length
        streamed = serving.post("/v1/forecast/batch", content=chunks, headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert serving.post("/v1/forecast", json={"entity_id": "site_0"}).status_code == 200


def test_the_largest_request_the_schema_allows_is_answered_not_refused(trained: tuple[Settings, DatasetConfig]) -> None:
    """As many ids as a batch may hold, each of the longest length in characters that ``requests``
    escapes to 12 bytes: past the body limit (derived from the batch limit) and the schema, to the
    forecast, which finds no such entity."""
    import json

    from core.api_limits import ENTITY_ID_MAX_CHARS

    settings = trained[0].model_copy(update={"model_poll_seconds": 0, "max_batch_entities": 5})
    ids = [chr(0x10000 + i) * ENTITY_ID_MAX_CHARS for i in range(5)]
    body = json.dumps({"entity_ids": ids}).encode()  # as requests sends it: ensure_ascii, ", " separators
    assert len(body) == settings.request_body_limit
    headers = {"content-type": "application/json"}
    with TestClient(create_app(settings)) as serving:
        batch = serving.post("/v1/forecast/batch", content=body, headers=headers)
        assert batch.status_code == 404, batch.text
        single = serving.post("/v1/forecast", content=json.dumps({"entity_id": ids[0]}).encode(), headers=headers)
        assert single.status_code == 404, single.text
        described = serving.get("/openapi.json").json()["paths"]["/v1/forecast/batch"]["post"]["responses"]["413"]
        assert f"larger than {len(body)} bytes" in described["description"]
        assert "than 5 ids" in described["description"]


def test_admin_reload_needs_the_token_and_keeps_serving_when_a_version_is_broken(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig]
) -> None:
    settings, dataset = own_registry
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    with TestClient(create_app(settings)) as serving:
        assert serving.post("/admin/reload").status_code == 404  # no token configured: no admin routes
    guarded = settings.model_copy(update={"admin_token": SecretStr("s3cret-token")})
    with TestClient(create_app(guarded)) as serving:
        assert serving.post("/admin/reload").status_code == 401
        assert serving.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        unchanged = serving.post("/admin/reload", headers=auth)
        assert unchanged.status_code == 200, unchanged.text
        assert unchanged.json()["swapped"] is False
        assert unchanged.json()["version"] == "1"

        broken = register_broken_version(registry, name, settings, tmp_path)
        registry.set_registered_model_alias(name, CHAMPION, broken)
        failures_before = metric(serving, "forecast_model_reloads_total", outcome="failed")
        failed = serving.post("/admin/reload", headers=auth)
        assert failed.status_code == 500
        assert failed.json()["detail"].endswith("still serving version 1")
        assert serving.post("/v1/forecast", json={"entity_id": "site_0"}).json()["model_version"] == "1"
        assert metric(serving, "forecast_model_reloads_total", outcome="failed") == failures_before + 1

        source = registry.get_model_version(name, "1")
        digest = {BUNDLE_DIGEST_TAG: source.tags[BUNDLE_DIGEST_TAG]}
        good = str(registry.create_model_version(name, source.source, run_id=source.run_id, tags=digest).version)
        registry.set_registered_model_alias(name, CHAMPION, good)
        swapped = serving.post("/admin/reload", headers=auth).json()
        assert swapped["swapped"] is True
        assert swapped["version"] == good
        assert serving.post("/v1/forecast", json={"entity_id": "site_0"}).json()["model_version"] == good


def test_an_unreachable_registry_at_startup_means_not_ready_then_retried_until_it_answers(
    own_registry: tuple[Settings, DatasetConfig], caplog: pytest.LogCaptureFixture
) -> None:
    """No MLflow server yet: the service starts, is live but not ready, and keeps retrying with
    backoff; once a real ``mlflow server`` answers on that address it becomes ready by itself."""
    import subprocess
    import sys

    from tests.utils.servers import free_port, wait_for_port

    settings, _ = own_registry
    port = free_port()
    remote = settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{port}", "model_poll_seconds": 0})
    with TestClient(create_app(remote)) as serving:
        assert serving.get("/health/live").status_code == 200
        ready = serving.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert ready.json()["reason"] == "no model loaded", ready.json()
        error_id = ready.json()["error_id"]
        [cause] = [r.getMessage() for r in caplog.records if error_id in r.getMessage()]
        assert "Connection" in cause or "connect" in cause, cause
        assert str(port) not in ready.text, "the tracking server's address stays in the log"
        assert serving.post("/v1/forecast", json={"entity_id": "site_0"}).status_code == 503
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", settings.tracking_uri, "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(port, server, timeout=120)
            deadline = time.monotonic() + 90
            while serving.get("/health/ready").status_code != 200:
                assert time.monotonic() < deadline, "still not ready 90 s after the registry came up"
                time.sleep(0.5)
            assert serving.post("/v1/forecast", json={"entity_id": "site_0"}).json()["model_version"] == "1"
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_two_workers_report_every_request_in_each_scrape(
    trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    """With two uvicorn workers, /metrics sums both: any scrape counts every request, whichever worker answered.

    The parent's environment carries a stale PROMETHEUS_MULTIPROC_DIR (as after importing Feast);
    the service must not write there.
    """
    import sys
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from prometheus_client.parser import text_string_to_metric_families

    from core.settings import PROJECT_ROOT, child_environment
    from tests.utils.servers import free_port, server_process

    port, shared, inherited = free_port(), tmp_path / "metrics", tmp_path / "inherited"
    inherited.mkdir()
    env = child_environment(
        trained[0], serving_port=port, serving_workers=2, model_poll_seconds=0, serving_metrics_dir=shared
    )
    env["PROMETHEUS_MULTIPROC_DIR"] = str(inherited)
    base = f"http://127.0.0.1:{port}"

    def post(_: int) -> int:
        request = urllib.request.Request(
            f"{base}/v1/forecast", data=b'{"entity_id": "site_0"}', headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)

    def answered() -> float:
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
            families = text_string_to_metric_families(response.read().decode())
        family = next(f for f in families if f.name == "forecast_http_request_duration_seconds")
        return sum(
            s.value
            for s in family.samples
            if s.name.endswith("_count") and s.labels["route"] == "/v1/forecast" and s.labels["status"] == "200"
        )

    with server_process([sys.executable, "-m", "model_serving"], port, timeout=180, env=env, cwd=PROJECT_ROOT):
        deadline = time.monotonic() + 180
        while not all(post(0) == 200 for _ in range(4)):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        before, sent = answered(), 0
        # A worker accepts connections only once it has loaded its model, and then whichever worker
        # accepts first may take a whole burst: send until both have answered some (per-process
        # values files), else the sums below would prove nothing.
        deadline = time.monotonic() + 180
        with ThreadPoolExecutor(max_workers=16) as pool:
            while True:
                assert set(pool.map(post, range(100))) == {200}
                sent += 100
                per_worker = {path.stem: answered_by(path) for path in shared.glob("histogram_*.db")}
                if len(per_worker) == 2 and all(count > 0 for count in per_worker.values()):
                    break
                assert time.monotonic() < deadline, f"one worker answered everything: {per_worker}"
        assert [answered() - before for _ in range(6)] == [float(sent)] * 6
    assert list(inherited.iterdir()) == []


def answered_by(values_file: Path) -> float:
    """Requests to /v1/forecast answered 200 that one worker's Prometheus values file holds."""
    import json

    from prometheus_client.mmap_dict import MmapedDict

    total = 0.0
    for key, value, _, _ in MmapedDict.read_all_values_from_file(str(values_file)):
        metric, sample, labels, _ = json.loads(key)
        if (metric, labels.get("route"), labels.get("status")) != (
            "forecast_http_request_duration_seconds",
            "/v1/forecast",
            "200",
        ):
            continue
        if sample.endswith("_bucket"):  # stored per bucket, not cumulated: together they are the count
            total += value
    return total


def test_every_step_carries_bands_that_hold_the_point_and_widen_with_the_level(client: TestClient) -> None:
    body = client.post("/v1/forecast", json={"entity_id": "site_0"}).json()
    assert body["interval_levels"] == [0.8, 0.95]
    assert body["note"] is None
    for point in body["forecast"]:
        eighty, ninety_five = point["intervals"]
        assert (eighty["level"], ninety_five["level"]) == (0.8, 0.95)
        assert ninety_five["lower"] < eighty["lower"] < point["value"] < eighty["upper"] < ninety_five["upper"]
    widths = [p["intervals"][0]["upper"] - p["intervals"][0]["lower"] for p in body["forecast"]]
    assert widths != [widths[0]] * len(widths), "each step has its own width"
    batch = client.post("/v1/forecast/batch", json={"entity_ids": ["site_0"]}).json()["forecasts"]
    assert without_age(batch[0]) == without_age(body)


def test_the_api_schema_documents_the_bands(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["Band"]["properties"]) == {"level", "lower", "upper"}
    assert schemas["ForecastPoint"]["properties"]["intervals"]["items"] == {"$ref": "#/components/schemas/Band"}
    assert {"interval_levels", "note"} <= set(schemas["Forecast"]["properties"])


def test_a_version_registered_without_intervals_still_serves_and_says_why_it_has_none(
    tmp_path: Path, own_registry: tuple[Settings, DatasetConfig]
) -> None:
    from forecast_store import store
    from model_serving.batch import issue_day

    settings, dataset = own_registry
    settings = settings.model_copy(update={"forecast_db": f"sqlite:///{tmp_path / 'forecasts.db'}"})
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    old = register_point_only(settings, name, "1")
    registry.set_registered_model_alias(name, CHAMPION, old)
    with TestClient(create_app(settings)) as app_client:
        body = app_client.post("/v1/forecast", json={"entity_id": "site_0"}).json()
    assert body["model_version"] == old
    assert (body["interval_levels"], body["note"]) == ([], f"version {old} was registered without interval calibration")
    assert [p["intervals"] for p in body["forecast"]] == [[]] * dataset.horizon
    assert issue_day(settings, dataset, SYNTHETIC_END).rows == 2 * dataset.horizon  # the batch forecast too
    assert {r.model_version for r in store.issued(settings, dataset.name, data_date=SYNTHETIC_END)} == {old}


def test_a_champion_with_quantile_bands_serves_them_from_the_same_features(
    own_registry: tuple[Settings, DatasetConfig],
) -> None:
    """intervals.method: quantile: the service answers the edge models' bands (asymmetric, holding the
    point, the 95% band holding the 80% one) with nothing but the bundle loaded."""
    from model_registry.registry import register_challenger
    from model_training.train import train

    settings, dataset = own_registry
    quantile = dataset.model_copy(update={"intervals": dataset.intervals.model_copy(update={"method": "quantile"})})
    fast = {"n_estimators": 30, "learning_rate": 0.2, "num_leaves": 7}
    outcome = train(settings, quantile, SYNTHETIC_END, "lightgbm", fast)
    name = settings.model_name(dataset.name)
    version = register_challenger(settings, name, outcome.run_id).version
    registry_client(settings).set_registered_model_alias(name, CHAMPION, version)
    with TestClient(create_app(settings)) as app_client:
        body = app_client.post("/v1/forecast", json={"entity_id": "site_0"}).json()
    assert body["model_version"] == version
    assert (body["interval_levels"], body["note"]) == ([0.8, 0.95], None)
    skews = []
    for p in body["forecast"]:
        eighty, ninety_five = p["intervals"]
        assert ninety_five["lower"] <= eighty["lower"] <= p["value"] <= eighty["upper"] <= ninety_five["upper"]
        skews.append((eighty["upper"] - p["value"]) - (p["value"] - eighty["lower"]))
    assert max(abs(s) for s in skews) > 1e-6  # the edges' own forecasts, not a width around the point
