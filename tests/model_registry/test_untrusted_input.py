"""Model bundles are loaded only from the configured registry's store, and only as registered.

On a real MLflow registry (SQLite, the session's trained champion, each test on its own copy of the
database): versions registered from elsewhere or changed after registration are refused by the
service, the rollback and the champion gate, and the service keeps serving its champion.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.dataset import DatasetConfig
from core.settings import Settings
from model_registry.provenance import (
    BUNDLE_DIGEST_TAG,
    UntrustedModelError,
    bundle_digest,
    check_location,
    discard,
    fetch,
    load_trusted,
    trusted_model,
)
from model_registry.tracking import CHAMPION
from model_registry.tracking import client as registry_client
from model_serving.app import create_app
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import assert_serves_version, on_registry_copy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Appended to a bundle's models-from-code entry: proof of whether a refused bundle's code ever ran.
PAYLOAD = "\nimport pathlib\npathlib.Path({marker!r}).write_text('bundle code ran')\n"


@pytest.fixture
def registry(tmp_path: Path, trained: tuple[Settings, DatasetConfig]) -> tuple[Settings, DatasetConfig, Any, str]:
    """This test's copy of the trained registry: (settings, dataset, MLflow client, model name)."""
    settings, dataset = on_registry_copy(trained[0], tmp_path), trained[1]
    return settings, dataset, registry_client(settings), settings.model_name(dataset.name)


@pytest.fixture
def champion_files(registry: tuple[Settings, DatasetConfig, Any, str]) -> Iterator[Path]:
    """A private copy of the champion's bundle files (what an attacker can copy too)."""
    settings, _, mlflow_client, name = registry
    local = fetch(settings, mlflow_client.get_model_version_download_uri(name, "1"))
    yield local
    discard(local)


def with_payload(bundle: Path, marker: Path) -> None:
    with (bundle / "pyfunc_entry.py").open("a") as entry:
        entry.write(PAYLOAD.format(marker=str(marker)))


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on a free port that records every request it gets: an SSRF target."""
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_registration_records_the_digest_of_the_files_it_warmed(
    registry: tuple[Settings, DatasetConfig, Any, str], champion_files: Path
) -> None:
    settings, _, mlflow_client, name = registry
    recorded = mlflow_client.get_model_version(name, "1").tags[BUNDLE_DIGEST_TAG]
    assert recorded == bundle_digest(champion_files)
    assert len(recorded) == 64
    with trusted_model(settings, name, "1") as model:  # load_trusted's path, its copy removed after
        assert len(model.predict(model.input_example)) == len(model.input_example)


def test_a_version_registered_from_outside_the_store_is_refused_and_the_champion_keeps_serving(
    tmp_path: Path, registry: tuple[Settings, DatasetConfig, Any, str], champion_files: Path
) -> None:
    from model_registry.promotion import rollback
    from model_registry.registry import champion_version
    from model_validation.champion import evaluate_challenger, holdout_of
    from monitoring.champion_backtest import backtest_registered

    settings, dataset, mlflow_client, name = registry
    evil, marker = tmp_path / "evil", tmp_path / "pwned"
    shutil.copytree(champion_files, evil)
    with_payload(evil, marker)
    # Whoever can register a version can also compute and set its digest: the location decides.
    tags = {BUNDLE_DIGEST_TAG: bundle_digest(evil)}
    run_id = mlflow_client.get_model_version(name, "1").run_id  # borrowed: the version looks like v1 in every way
    outside = str(mlflow_client.create_model_version(name, evil.as_uri(), run_id=run_id, tags=tags).version)

    with TestClient(create_app(settings)) as service:
        runtime = service.app.state.runtime  # type: ignore[attr-defined]
        assert runtime.model.version == "1"
        mlflow_client.set_registered_model_alias(name, CHAMPION, outside)
        assert runtime.refresh_model() is False
        assert f"cannot load version {outside}: UntrustedModelError" in runtime.last_reload_error
        assert evil.as_uri() in runtime.last_reload_error
        assert "outside the registry's artifact store" in runtime.last_reload_error
        assert_serves_version(service, "1")

    mlflow_client.set_registered_model_alias(name, CHAMPION, "1")
    with pytest.raises(UntrustedModelError, match="outside the registry's artifact store"):
        rollback(settings, name, "to the outside version", to_version=outside)
    assert champion_version(settings, name) == "1"
    holdout = holdout_of(settings, dataset, SYNTHETIC_END)
    with pytest.raises(UntrustedModelError, match="outside the registry's artifact store"):
        evaluate_challenger(settings, dataset, name, outside, holdout)
    assert [r.version for r in backtest_registered(settings, dataset, SYNTHETIC_END)] == ["1"]
    mlflow_client.set_registered_model_alias(name, CHAMPION, outside)
    with pytest.raises(UntrustedModelError, match="outside the registry's artifact store"):
        backtest_registered(settings, dataset, SYNTHETIC_END)
    assert not marker.exists()


@pytest.mark.parametrize(
    "source",
    [
        "http://{host}/model",
        "mlflow-artifacts://{host}/1/models/m-1/artifacts",
        "s3://another-bucket/models/m-1/artifacts",
        "file://{host}/share/model",
    ],
)
def test_no_request_is_sent_for_a_version_stored_elsewhere(
    registry: tuple[Settings, DatasetConfig, Any, str], listener: tuple[str, list[str]], source: str
) -> None:
    settings, _, mlflow_client, name = registry
    host, seen = listener
    version = mlflow_client.create_model_version(name, source.format(host=host), tags={BUNDLE_DIGEST_TAG: "0" * 64})
    with pytest.raises(UntrustedModelError, match="model files at"):
        load_trusted(settings, name, str(version.version))
    assert seen == []


def test_a_changed_file_of_a_registered_bundle_is_refused(
    tmp_path: Path, registry: tuple[Settings, DatasetConfig, Any, str], champion_files: Path
) -> None:
    settings, _, mlflow_client, name = registry
    registered = mlflow_client.get_model_version(name, "1")
    # A second version of the same files, inside the store, with the digest registration recorded.
    stored = settings.home / "mlartifacts" / "copies" / tmp_path.name
    shutil.copytree(champion_files, stored)
    try:
        tags = {BUNDLE_DIGEST_TAG: registered.tags[BUNDLE_DIGEST_TAG]}
        copy = str(
            mlflow_client.create_model_version(name, stored.as_uri(), run_id=registered.run_id, tags=tags).version
        )
        untagged = str(mlflow_client.create_model_version(name, stored.as_uri(), run_id=registered.run_id).version)
        marker = tmp_path / "pwned"
        with TestClient(create_app(settings)) as service:
            runtime = service.app.state.runtime  # type: ignore[attr-defined]
            mlflow_client.set_registered_model_alias(name, CHAMPION, copy)
            assert runtime.refresh_model() is True  # the same files load
            assert service.post("/v1/forecast", json={"entity_id": "site_0"}).json()["model_version"] == copy

            mlflow_client.set_registered_model_alias(name, CHAMPION, "1")
            assert runtime.refresh_model() is True
            with_payload(stored, marker)  # one line of code added to a registered bundle
            mlflow_client.set_registered_model_alias(name, CHAMPION, copy)
            assert runtime.refresh_model() is False
            assert "changed since registration" in runtime.last_reload_error
            assert service.post("/v1/forecast", json={"entity_id": "site_0"}).json()["model_version"] == "1"

            mlflow_client.set_registered_model_alias(name, CHAMPION, untagged)
            assert runtime.refresh_model() is False
            assert f"carries no {BUNDLE_DIGEST_TAG} tag" in runtime.last_reload_error
            assert runtime.model.version == "1"
        assert not marker.exists()

        weights = next(stored.rglob("model.ubj"))
        (stored / "pyfunc_entry.py").write_bytes((champion_files / "pyfunc_entry.py").read_bytes())
        assert bundle_digest(stored) == registered.tags[BUNDLE_DIGEST_TAG]  # undone: it matches again
        weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
        with pytest.raises(UntrustedModelError, match="changed since registration"):
            load_trusted(settings, name, copy)
    finally:
        shutil.rmtree(stored)


def test_artifact_locations_inside_and_outside_the_store(tmp_path: Path) -> None:
    local = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    store = tmp_path / "home" / "mlartifacts"
    store.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (store / "link").symlink_to(tmp_path / "elsewhere")
    check_location(local, (store / "1" / "models" / "m-1" / "artifacts").as_uri())
    check_location(local, str(store / "1"))
    for outside in [
        (tmp_path / "elsewhere").as_uri(),
        f"{store.as_uri()}/../../elsewhere",
        (store / "link" / "model").as_uri(),
        f"file://other-host{store}/1",
        "mlflow-artifacts:/1/models/m-1/artifacts",  # no tracking server in the local profile
        "http://169.254.169.254/latest/meta-data/",
        "s3://mlflow/artifacts/1",
    ]:
        with pytest.raises(UntrustedModelError):
            check_location(local, outside)

    server = Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri="http://mlflow:5000",
        model_artifact_roots=["mlflow-artifacts:", "s3://mlflow/artifacts"],
        _env_file=None,
    )  # type: ignore[call-arg]
    for inside in [
        "mlflow-artifacts:/1/models/m-1/artifacts",
        "mlflow-artifacts://mlflow:5000/1/models/m-1/artifacts",
        "s3://mlflow/artifacts/1/models/m-1/artifacts",
    ]:
        check_location(server, inside)
    for outside in [
        "mlflow-artifacts://evil.example:5000/1/models/m-1/artifacts",
        "mlflow-artifacts:/1/../../etc",
        "s3://mlflow/artifacts-evil/1",
        "s3://mlflow-evil/artifacts/1",
        "s3://mlflow/artifacts/../secrets/x",
        "s3://mlflow/artifacts/1?versionId=2",
        store.as_uri(),  # the local store is not listed here
    ]:
        with pytest.raises(UntrustedModelError):
            check_location(server, outside)


def test_the_digest_covers_every_file_but_mlflows_own_note_and_refuses_links(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "code" / "pkg").mkdir(parents=True)
    (bundle / "MLmodel").write_text("flavors: {}\n")
    (bundle / "code" / "pkg" / "mod.py").write_text("x = 1\n")
    first = bundle_digest(bundle)
    (bundle / "registered_model_meta").write_text("model_name: m\nmodel_version: '7'\n")
    assert bundle_digest(bundle) == first  # MLflow rewrites it on every fetch by name
    (bundle / "code" / "pkg" / "mod.py").write_text("x = 2\n")
    assert bundle_digest(bundle) != first
    (bundle / "code" / "pkg" / "mod.py").write_text("x = 1\n")
    (bundle / "code" / "pkg" / "mod.py").rename(bundle / "code" / "pkg" / "other.py")
    assert bundle_digest(bundle) != first  # names count, not only contents
    (bundle / "code" / "pkg" / "other.py").rename(bundle / "code" / "pkg" / "mod.py")
    assert bundle_digest(bundle) == first
    (bundle / "code" / "link.py").symlink_to(tmp_path / "anything.py")
    with pytest.raises(UntrustedModelError, match="symbolic link"):
        bundle_digest(bundle)


def test_a_quote_in_a_searched_value_is_compared_never_parsed(settings: Settings) -> None:
    """Values put in MLflow's search filters come from outside (a DAG run id given over REST, a model
    or dataset name): one holding a quote is still one constant that matches itself only, and one
    that MLflow's filter language cannot hold (both kinds of quotes) is refused before the search."""
    from model_registry.registry import find_run
    from model_registry.tracking import experiment_id, literal

    mlflow = registry_client(settings)
    experiment = experiment_id(settings)
    runs = {}
    for value in ("manual__plain", "manual__it's", 'manual__say "hi"', "x' or tags.dag_run_id != 'q"):
        run = mlflow.create_run(experiment, tags={"dag_run_id": value})
        mlflow.set_terminated(run.info.run_id)
        runs[value] = run.info.run_id
    for value, run_id in runs.items():
        assert find_run(settings, "dag_run_id", value) == run_id, value
    with pytest.raises(LookupError, match="no finished training run"):
        find_run(settings, "dag_run_id", "manual__it")
    with pytest.raises(ValueError, match="both kinds of quotes"):
        literal("""it's "both\"""")
