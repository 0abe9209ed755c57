"""The per-series work on a real Ray cluster (a head and two worker nodes, each its own processes,
started with ``ray start``): the statistical families' fits (the same models as fitted in the
training's own process, series left out for the same reasons), the feature build and the batch
forecast (the same tables and rows), and the work done in the workers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP, label_names
from core.dataset import DatasetConfig
from core.engine import LOCAL, RayEngine
from core.settings import Settings
from harness import series
from harness.ray_cluster import RayCluster, ray_cluster
from harness.wait import wait_for
from model_training import devices, forecasters

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with ray_cluster(workers=2, cpus=1, logs=tmp_path_factory.mktemp("ray-logs")) as started:
        yield started


@pytest.fixture(params=["driver", "client"])
def cluster(request: pytest.FixtureRequest, nodes: RayCluster) -> Iterator[RayEngine]:
    """The engine as a driver on the cluster's machine (the GCS address) and through Ray Client
    (``ray://``, as a task of Airflow or a training pod outside the cluster connects)."""
    import ray

    engine = RayEngine(nodes.address if request.param == "driver" else nodes.client_address)
    # A hang guard, no speed target: the workers join in seconds alone, in minutes on a busy machine.
    wait_for(lambda: engine.cpus() == 2, "both Ray workers to join", 300)
    try:
        yield engine
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetConfig, pd.DataFrame]:
    """Training rows of 30 generated daily series and one constant series (which no model fits)."""
    from feature_store.features import build_features
    from feature_store.training_set import build_labels

    dataset = DatasetConfig.from_yaml(series.write(tmp_path_factory.mktemp("series"), 30, days=240, seed=9))
    raw = pd.concat(series.frames(30, days=240, seed=9))
    flat = raw[raw["series"] == "s0"].assign(series="flat", value=5.0)
    raw = pd.concat([raw, flat], ignore_index=True)
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=["series", EVENT_TIMESTAMP])
    return dataset, frame.dropna(subset=label_names(dataset)).reset_index(drop=True)


def fitted_json(family: str, dataset: DatasetConfig, frame: pd.DataFrame, device: devices.Device, out: Path) -> str:
    """The bundle file of ``family`` fitted on ``frame`` with ``device``'s engine."""
    model = forecasters.create(family, dataset, device=device)
    model.fit(frame, frame[label_names(dataset)].to_numpy(dtype="float64")).save(out)
    return (out / "statistical.json").read_text()


@pytest.mark.parametrize("family", ["auto_ets", "auto_theta"])
def test_ray_fits_the_same_models_as_the_training_process(
    family: str, cluster: RayEngine, rows: tuple[DatasetConfig, pd.DataFrame], tmp_path: Path
) -> None:
    dataset, frame = rows
    local = fitted_json(family, dataset, frame, devices.Device("cpu", LOCAL), tmp_path / "local")
    on_ray = fitted_json(family, dataset, frame, devices.Device("cpu", cluster), tmp_path / "ray")
    saved = json.loads(local)
    assert len(saved["models"]) == 30
    assert saved["skipped"] == {"flat": "a constant series"}
    assert on_ray == local, "the same models in the same order, the same series left out: the same bundle"


def test_the_partitions_run_in_the_clusters_workers(cluster: RayEngine) -> None:
    pids = cluster.map(lambda part: os.getpid(), [[n] for n in range(8)])
    assert os.getpid() not in pids


def test_the_settings_send_the_per_series_work_to_the_cluster() -> None:
    settings = Settings(engine="ray", ray_address="127.0.0.1:6379", training_device="cpu", _env_file=None)  # type: ignore[call-arg]
    assert devices.training_device(settings) == devices.Device("cpu", RayEngine("127.0.0.1:6379"))
    assert devices.training_device(Settings(training_device="cpu", _env_file=None)).engine is LOCAL  # type: ignore[call-arg]


def test_streamed_partitions_come_back_in_order_from_the_workers(cluster: RayEngine) -> None:
    drawn: list[int] = []

    def parts() -> Iterator[list[int]]:
        for n in range(12):
            drawn.append(n)
            yield [n]

    results = []
    for n, pid in cluster.imap(lambda part: (part[0], os.getpid()), parts()):
        results.append(n)
        # A few partitions ahead of the one yielded, not every one: the step holds a few at a time.
        assert len(drawn) <= n + 1 + 2 * cluster.cpus()
        assert pid != os.getpid()
    assert results == list(range(12))


def test_ray_builds_the_same_feature_and_history_tables_as_the_process(cluster: RayEngine, tmp_path: Path) -> None:
    from core.objects import read_parquet
    from data_pipeline.ingest import ingest
    from data_pipeline.validation import validate
    from feature_store.build import write_offline_source
    from feature_store.features import feature_table_location, history_table_location

    dataset = DatasetConfig.from_yaml(series.write(tmp_path / "d", 40, days=150, seed=4))
    tables = []
    for kind in ("local", "ray"):
        settings = Settings(
            home=tmp_path / kind, source_roots=[tmp_path], engine=kind, ray_address=cluster.address, _env_file=None
        )  # type: ignore[call-arg]
        ingest(dataset, series.END, settings)
        validate(dataset, series.END, settings)
        built = write_offline_source(settings, dataset, series.END, per_part=7)  # 6 parts
        features = read_parquet(feature_table_location(settings, dataset), settings)
        assert built.rows == len(features) > 40 * 100
        tables.append((features, read_parquet(history_table_location(settings, dataset), settings)))
    (local_features, local_history), (ray_features, ray_history) = tables
    pd.testing.assert_frame_equal(ray_features, local_features, check_exact=True)
    pd.testing.assert_frame_equal(ray_history, local_history, check_exact=True)


def test_ray_issues_and_scores_the_same_forecasts_as_the_process(
    cluster: RayEngine, tmp_path: Path, trained: tuple[Settings, DatasetConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch forecast's parts predicted in the cluster's workers, by the champion and by a shadow
    version, then the next day's scoring of them a part of entities at a time: the same rows,
    values, bands and scores stored as when the process does both; on Ray the driver loads no
    bundle and reads no actuals (it refuses to, and the day is issued and scored all the same)."""
    from datetime import timedelta

    from forecast_store import store
    from forecast_store.schema import BATCH, SHADOW
    from model_registry.tracking import CHALLENGER
    from model_registry.tracking import client as registry_client
    from model_serving import batch
    from monitoring import forecast_scoring
    from tests.utils.data import SYNTHETIC_END
    from tests.utils.platform import on_registry_copy

    settings, dataset = on_registry_copy(trained[0], tmp_path), trained[1]
    name = settings.model_name(dataset.name)
    registry = registry_client(settings)
    champion = registry.get_model_version(name, "1")
    twin = str(registry.create_model_version(name, champion.source, run_id=champion.run_id, tags=champion.tags).version)
    registry.set_registered_model_alias(name, CHALLENGER, twin)
    issued_on = SYNTHETIC_END - timedelta(days=1)
    stored, scores = {}, {}
    for kind in ("local", "ray"):
        run = settings.model_copy(
            update={"engine": kind, "ray_address": cluster.address, "forecast_db": f"sqlite:///{tmp_path / kind}.db"}
        )
        if kind == "ray":
            monkeypatch.setattr(batch._LOADED, "model", lambda *args: pytest.fail("the driver loaded a bundle"))
            monkeypatch.setattr(forecast_scoring, "_actuals", lambda *args: pytest.fail("the driver read actuals"))
        issued = batch.issue_day(run, dataset, issued_on, per_part=1)  # each entity a part, a task of its own
        assert (issued.entities, issued.shadow_versions) == (2, [twin])
        stored[kind] = [
            (r.source, r.model_version, r.entity_id, r.step, r.target_time, r.value, r.intervals)
            for source in (BATCH, SHADOW)
            for r in store.issued(run, dataset.name, data_date=issued_on, source=source)
        ]
        assert forecast_scoring.score_forecasts(run, dataset, SYNTHETIC_END, per_part=1) > 0
        scores[kind] = [{k: v for k, v in row.items() if k != "scored_at"} for row in store.scored(run, dataset.name)]
    assert len(stored["local"]) == 2 * 2 * dataset.horizon
    assert stored["ray"] == stored["local"]
    assert scores["ray"] == scores["local"]
