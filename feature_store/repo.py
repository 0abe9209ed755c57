"""The Feast repo: ``feature_store.yaml`` per profile and the feature definitions, applied from Python.

Training (``get_historical_features``) and serving (``get_online_features``) both ask for the one
FeatureService named here, so they cannot drift apart.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from core.columns import EVENT_TIMESTAMP, calendar_feature_names, history_name, numeric_feature_names
from core.dataset import DatasetConfig
from core.files import write_text_atomically
from core.settings import OnlineStoreKind, Settings
from feature_store.feast_import import load_feast
from feature_store.features import history_source_path, local_offline_source, offline_source_path
from feature_store.outcomes import Materialized

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

log = logging.getLogger(__name__)


def feature_view_name(dataset: DatasetConfig) -> str:
    return f"{dataset.name}_features"


def feature_service_name(dataset: DatasetConfig) -> str:
    return f"{dataset.name}_forecasting"


def history_view_name(dataset: DatasetConfig) -> str:
    """Each series' recent target values (:mod:`core.history`), which the per-series families forecast
    from: a view of its own, out of the FeatureService, so that training sets never join its lists."""
    return f"{dataset.name}_history"


# What ``feature_store.yaml`` holds in place of a credential: Feast expands environment variables
# when it reads the file (``feast`` CLI, ``feast serve``), and those run with the platform's settings.
REDIS_PASSWORD_VARIABLE = "${MLOPS_REDIS_PASSWORD}"
REGISTRY_VARIABLE = "${MLOPS_FEAST_REGISTRY}"


def repo_config(settings: Settings, *, for_file: bool = False) -> dict[str, Any]:
    """Feast's configuration for the settings' profile; ``for_file``: credentials as variables."""
    online: dict[str, Any]
    if settings.online_store is OnlineStoreKind.REDIS:
        connection = settings.redis_connection_string(password_as=REDIS_PASSWORD_VARIABLE if for_file else None)
        online = {"type": "redis", "connection_string": connection}
    else:
        online = {"type": "sqlite", "path": str(settings.feast_repo / "online_store.db")}
    return {
        "project": settings.feast_project,
        "provider": "local",
        "registry": registry_config(settings, for_file=for_file),
        "offline_store": {"type": "duckdb"},
        "online_store": online,
        "entity_key_serialization_version": 3,
    }


def registry_config(settings: Settings, *, for_file: bool = False) -> dict[str, Any]:
    """A file registry by default; a database URL (compose, k8s) gives Feast's SQL registry, which
    every container and pod reads without a shared volume."""
    path = settings.feast_registry
    assert path is not None
    if "://" in path and not path.startswith(("file://", "s3://", "gs://")):
        from sqlalchemy.engine import make_url

        return {
            "registry_type": "sql",
            "path": REGISTRY_VARIABLE if for_file and make_url(path).password else path,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
    return {"registry_type": "file", "path": path}


def write_repo_config(settings: Settings) -> Path:
    repo = settings.feast_repo
    (repo / "data").mkdir(parents=True, exist_ok=True)
    path = repo / "feature_store.yaml"
    # Every process that opens the store rewrites this file; another one may be reading it meanwhile.
    write_text_atomically(yaml.safe_dump(repo_config(settings, for_file=True), sort_keys=False), path)
    return path


def get_store(settings: Settings) -> FeatureStore:
    """The store, configured in memory: the credentials never touch the disk. The file written
    alongside serves the ``feast`` CLI."""
    load_feast()
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    write_repo_config(settings)
    config = RepoConfig(**repo_config(settings))
    config.repo_path = settings.feast_repo
    return FeatureStore(repo_path=str(settings.feast_repo), config=config)


def definitions(settings: Settings, dataset: DatasetConfig) -> tuple[Any, FeatureView, FeatureService, FeatureView]:
    """Entity, feature view, feature service and history view of a dataset."""
    load_feast()
    from feast import Entity, FeatureService, FeatureView, Field, FileSource
    from feast.types import Array, Float64, Int64
    from feast.value_type import ValueType

    entity = Entity(
        name=dataset.entity_column,
        join_keys=[dataset.entity_column],
        value_type=ValueType.STRING,
        description=f"Series key of the {dataset.name} dataset.",
    )
    source = FileSource(
        name=f"{dataset.name}_feature_source",
        path=str(offline_source_path(settings, dataset)),
        timestamp_field=EVENT_TIMESTAMP,
    )
    schema = [Field(name=name, dtype=Float64) for name in numeric_feature_names(dataset)]
    schema += [Field(name=name, dtype=Int64) for name in calendar_feature_names(dataset)]
    view = FeatureView(
        name=feature_view_name(dataset),
        entities=[entity],
        ttl=dataset.feature_engineering.ttl,
        schema=schema,
        source=source,
        online=True,
        tags={"dataset": dataset.name},
    )
    service = FeatureService(name=feature_service_name(dataset), features=[view])
    history = FeatureView(
        name=history_view_name(dataset),
        entities=[entity],
        ttl=dataset.feature_engineering.ttl,
        schema=[Field(name=history_name(dataset), dtype=Array(Float64))],
        source=FileSource(
            name=f"{dataset.name}_history_source",
            path=str(history_source_path(settings, dataset)),
            timestamp_field=EVENT_TIMESTAMP,
        ),
        online=True,
        tags={"dataset": dataset.name},
    )
    return entity, view, service, history


def apply(settings: Settings, dataset: DatasetConfig) -> FeatureStore:
    """Register the dataset's definitions (idempotent: Feast diffs against its registry)."""
    store = get_store(settings)
    store.apply(list(definitions(settings, dataset)))
    return store


def materialize(settings: Settings, dataset: DatasetConfig, end: datetime) -> Materialized:
    """Load each entity's newest features before ``end`` into the online store; returns the interval read.

    The interval is always the TTL window ``[end - ttl, end)``, never Feast's incremental one from its
    recorded end: a day's rows reach the offline source late (after validation, or after a failed
    day is fixed) while hourly loads keep advancing that end, so an incremental load would skip them
    for good. Feast writes one row per entity, so the wider read costs little; a failed load records
    no end, and its retry reads the same rows again.
    """
    local_offline_source(settings, dataset)
    store = get_store(settings)
    views = [feature_view_name(dataset)]
    if history_source_path(settings, dataset).exists():  # a feature table built before histories were
        views.append(history_view_name(dataset))
    start = end - (dataset.feature_engineering.ttl or timedelta(days=7))
    store.materialize(start_date=start, end_date=end, feature_views=views)
    log.info("materialized %s from %s to %s", ", ".join(views), start, end)
    return Materialized(start=start, end=end)


def apply_and_materialize(settings: Settings, dataset: DatasetConfig, end: datetime) -> Materialized:
    """Register the definitions, then load the online store up to ``end``: one idempotent step."""
    apply(settings, dataset)
    return materialize(settings, dataset, end)


def load_day(settings: Settings, dataset: DatasetConfig, day: date) -> Materialized:
    """The daily load of ``day``'s features: the online store gets each entity's newest features the
    offline source holds (the day's, or a later day's after a backfill: never older ones).

    A day loaded before is loaded again in full: Feast's Redis store keeps a stored row when the new
    one has the same event time (feast-dev/feast#2795), so a corrected day's features would never
    reach it. The view's rows are removed first (the entities read as missing for the seconds of the
    load); SQLite's online store overwrites by itself.
    """
    from core.objects import exists, write_object
    from core.partitions import state_location
    from core.windows import end_of
    from feature_store.features import offline_source

    held = offline_source(settings, dataset)
    newest = max(day, held.logical_date) if held is not None else day
    marker = state_location(settings, dataset, day, "online_features.json")
    store = apply(settings, dataset)
    if exists(marker, settings) and settings.online_store is OnlineStoreKind.REDIS:
        from feast.infra.online_stores.redis import RedisOnlineStore

        for name in (feature_view_name(dataset), history_view_name(dataset)):
            RedisOnlineStore().delete_table(store.config, store.get_feature_view(name))
        log.info("removed %s's online rows to load a re-run of %s", dataset.name, day)
    loaded = materialize(settings, dataset, end_of(newest))
    write_object(marker, loaded.model_dump_json().encode(), settings)
    return loaded
