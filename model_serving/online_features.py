"""Reading the FeatureService's online features for a batch of entities, in one round trip.

Two readers give the same rows (a test holds them equal):

* :class:`FeastReader` calls Feast's ``get_online_features``: any online store, but Feast builds
  protos, response objects and a dict of lists per call.
* :class:`RedisReader` reads the very hashes Feast materialized into Redis, with the keys computed
  by Feast's own Redis store code, in one pipelined ``HMGET`` per entity: the serving hot path in
  the compose and k8s profiles. It owns a connection pool with timeouts, password and TLS.

Both report each entity's event time; the caller judges freshness (Feast does not apply the feature
view's TTL on online reads).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from core.settings import OnlineStoreKind, Settings
from model_serving.metrics import FEATURE_FETCH_LATENCY

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)


class UnknownEntityError(KeyError):
    """The online store holds no features for these entities."""

    def __init__(self, entity_ids: list[str]):
        super().__init__(entity_ids)
        self.entity_ids = entity_ids

    def __str__(self) -> str:
        return f"unknown entity: {', '.join(self.entity_ids)}"


class StoreUnavailableError(RuntimeError):
    """The online store could not be read."""


@dataclass(frozen=True)
class OnlineRows:
    """One row per requested entity, in request order; an entity the store does not hold has all
    features NaN and no event time, so one unknown entity does not fail the others read with it."""

    entity_ids: list[str]
    features: pd.DataFrame  # columns = model features (NaN: missing)
    event_times: list[datetime | None]  # None: the store holds nothing for this entity
    # Each entity's history (:mod:`core.history`) and its newest value's time, where asked for (a
    # per-series model's); None for an entity whose history the store does not hold.
    histories: list[np.ndarray | None] | None = None
    history_times: list[datetime | None] | None = None

    @property
    def unknown(self) -> list[str]:
        return [e for e, t in zip(self.entity_ids, self.event_times, strict=True) if t is None]


class FeatureReader(Protocol):
    def read(self, entity_ids: list[str], columns: list[str], history: bool = False) -> OnlineRows: ...

    def probe(self) -> None: ...


def _time(stamp: float) -> datetime | None:
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp > 0 else None


def _rows(
    entity_ids: list[str],
    columns: list[str],
    matrix: np.ndarray,
    stamps: list[float],
    histories: tuple[list[np.ndarray | None], list[float]] | None = None,
) -> OnlineRows:
    """``matrix``: one row per entity, one float64 column per feature (NaN: missing); ``histories``:
    each entity's history and its time, where asked for."""
    frame = pd.DataFrame(matrix, columns=columns, copy=False)
    times = [_time(ts) for ts in stamps]
    if histories is None:
        return OnlineRows(entity_ids=list(entity_ids), features=frame, event_times=times)
    windows, history_stamps = histories
    return OnlineRows(list(entity_ids), frame, times, windows, [_time(ts) for ts in history_stamps])


class FeastReader:
    """Feast's ``get_online_features`` over the FeatureService (any online store)."""

    def __init__(self, settings: Settings, dataset: DatasetConfig, store: FeatureStore):
        from core.columns import history_name
        from feature_store.repo import feature_service_name, history_view_name

        self.dataset = dataset
        self.store = store
        self.service = store.get_feature_service(feature_service_name(dataset))
        self.history_name = history_name(dataset)
        # With the history, one call for both views: the service's features by reference, and the history's.
        features = [f"{p.name}:{f.name}" for p in self.service.feature_view_projections for f in p.features]
        self.with_history = [*features, f"{history_view_name(dataset)}:{self.history_name}"]

    def read(self, entity_ids: list[str], columns: list[str], history: bool = False) -> OnlineRows:
        key = self.dataset.entity_column
        rows = [{key: e} for e in entity_ids]
        started = time.perf_counter()
        try:
            response = self.store.get_online_features(
                features=self.with_history if history else self.service, entity_rows=rows
            ).to_dict(include_event_timestamps=True)
        except Exception as exc:  # any store/client failure is an unavailable store to callers
            raise StoreUnavailableError(f"online store read failed: {exc}") from exc
        finally:
            FEATURE_FETCH_LATENCY.observe(time.perf_counter() - started)
        stamps = pd.DataFrame({c: response[f"{c}__ts"] for c in columns}).max(axis=1)
        matrix = np.array([response[c] for c in columns], dtype=np.float64).T.reshape(len(entity_ids), len(columns))
        histories = None
        if history:
            windows = [None if w is None else np.asarray(w, dtype=np.float64) for w in response[self.history_name]]
            times = [float(ts or 0) for ts in response[f"{self.history_name}__ts"]]
            histories = (windows, times)
        return _rows(entity_ids, columns, matrix, [float(ts) for ts in stamps], histories)

    def probe(self) -> None:
        """One real round trip to the online store; raises StoreUnavailableError if it fails."""
        try:
            self.store.get_online_features(
                features=self.service, entity_rows=[{self.dataset.entity_column: "__readiness_probe__"}]
            )
        except Exception as exc:  # any store/client failure means the store is not usable
            raise StoreUnavailableError(f"online store unreachable: {exc}") from exc


@dataclass(frozen=True)
class _View:
    name: str  # as stored in Redis (versioned when Feast versions views)
    fields: list[str]  # feature names, then Feast's "_ts:<view>" field
    hash_keys: list[Any]  # the hash fields of those, as Feast writes them


class RedisReader:
    """The FeatureService's features straight from Redis: one pipelined HMGET per entity and view."""

    def __init__(self, settings: Settings, dataset: DatasetConfig, store: FeatureStore):
        import redis
        from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name

        from feature_store.repo import feature_service_name

        self.dataset = dataset
        self.config = store.config
        self.feast_redis = RedisOnlineStore()
        service = store.get_feature_service(feature_service_name(dataset))
        self.views: list[_View] = []
        for projection in service.feature_view_projections:
            view = store.get_feature_view(projection.name)
            name = _versioned_fv_name(view, store.config)
            fields, hash_keys = self.feast_redis._generate_hset_keys_for_features(
                view, [f.name for f in projection.features], fv_name_override=name
            )
            self.views.append(_View(name, list(fields), list(hash_keys)))
        from core.columns import history_name
        from feature_store.repo import history_view_name

        self.history: _View | None = None
        try:
            view = store.get_feature_view(history_view_name(dataset))
        except Exception:  # a registry applied before histories were: per-series models cannot be served
            log.warning("the registry has no %s view: no history to serve", history_view_name(dataset))
        else:
            name = _versioned_fv_name(view, store.config)
            fields, hash_keys = self.feast_redis._generate_hset_keys_for_features(
                view, [history_name(dataset)], fv_name_override=name
            )
            self.history = _View(name, list(fields), list(hash_keys))
        pool_class = redis.BlockingConnectionPool
        connection: dict[str, Any] = {
            "host": settings.redis_host,
            "port": settings.redis_port,
            "password": settings.redis_password.get_secret_value() if settings.redis_password else None,
            "socket_timeout": settings.redis_timeout_seconds,
            "socket_connect_timeout": settings.redis_timeout_seconds,
            "max_connections": settings.redis_max_connections,
            "timeout": settings.redis_timeout_seconds,  # waiting for a free pooled connection
            "health_check_interval": 30,
        }
        if settings.redis_ssl:
            connection["connection_class"] = redis.SSLConnection
        self.client = redis.Redis(connection_pool=pool_class(**connection))
        self.errors = (redis.exceptions.RedisError, OSError)
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from google.protobuf.timestamp_pb2 import Timestamp

        self._entity_key, self._value, self._timestamp = EntityKey, Value, Timestamp

    def _keys(self, entity_ids: list[str]) -> list[bytes]:
        key = self.dataset.entity_column
        protos = [self._entity_key(join_keys=[key], entity_values=[self._value(string_val=e)]) for e in entity_ids]
        return list(self.feast_redis._generate_redis_keys_for_entities(self.config, protos))

    def read(self, entity_ids: list[str], columns: list[str], history: bool = False) -> OnlineRows:
        if history and self.history is None:
            raise StoreUnavailableError("the online store has no history view: apply the feature definitions")
        views = [*self.views, self.history] if history and self.history is not None else self.views
        started = time.perf_counter()
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in self._keys(entity_ids):
                for view in views:
                    pipe.hmget(key, view.hash_keys)  # type: ignore[arg-type]  # redis-py takes bytes keys
            replies = pipe.execute()
        except self.errors as exc:
            raise StoreUnavailableError(f"online store read failed: {exc}") from exc
        finally:
            FEATURE_FETCH_LATENCY.observe(time.perf_counter() - started)
        position = {name: i for i, name in enumerate(columns)}
        matrix = np.full((len(entity_ids), len(columns)), np.nan)
        stamps: list[float] = []
        windows: list[np.ndarray | None] = []
        history_stamps: list[float] = []
        for index in range(len(entity_ids)):
            if len(views) > len(self.views):
                *encoded, stamp = replies[index * len(views) + len(self.views)]
                windows.append(
                    np.asarray(self._value.FromString(encoded[0]).double_list_val.val) if encoded[0] else None
                )
                history_stamps.append(self._seconds(stamp))
            newest = 0.0
            for offset, view in enumerate(self.views):
                reply = replies[index * len(views) + offset]
                *encoded, stamp = reply  # Feast's "_ts:<view>" field comes last
                newest = max(newest, self._seconds(stamp))
                for name, raw in zip(view.fields, encoded, strict=False):
                    column = position.get(name)
                    if column is not None and raw:
                        value = _scalar(self._value.FromString(raw))
                        if value is not None:
                            matrix[index, column] = value
            stamps.append(newest)
        return _rows(entity_ids, columns, matrix, stamps, (windows, history_stamps) if history else None)

    def _seconds(self, stamp: bytes | None) -> float:
        """A Feast event-time field as seconds since the epoch; 0 where unset."""
        if not stamp:
            return 0.0
        ts = self._timestamp.FromString(stamp)
        return float(ts.seconds + ts.nanos / 1e9)

    def probe(self) -> None:
        try:
            self.client.ping()
        except self.errors as exc:
            raise StoreUnavailableError(f"online store unreachable: {exc}") from exc


def _scalar(value: Any) -> Any:
    """The number a Feast ``Value`` proto holds (the features are scalars); None when unset."""
    kind = value.WhichOneof("val")
    return None if kind is None or kind == "null_val" else getattr(value, kind)


def open_reader(settings: Settings, dataset: DatasetConfig) -> FeatureReader:
    """The configured read path (``online_read_path``); Redis reads need the Redis online store."""
    from feature_store.repo import get_store

    store = get_store(settings)
    path = settings.online_read_path
    if path == "auto":
        path = "redis" if settings.online_store is OnlineStoreKind.REDIS else "feast"
    if path == "redis":
        if settings.online_store is not OnlineStoreKind.REDIS:
            raise ValueError("online_read_path=redis needs online_store=redis")
        return RedisReader(settings, dataset, store)
    return FeastReader(settings, dataset, store)
