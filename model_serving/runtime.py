"""What the service loads once at startup: the champion bundle and the online feature reader."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from configs.dataset import DatasetConfig
from configs.settings import Settings
from model_serving.metrics import FEATURE_FETCH_LATENCY, INFERENCE_LATENCY

log = logging.getLogger(__name__)


class UnknownEntityError(KeyError):
    """The online store holds no features for these entities."""


class StoreUnavailableError(RuntimeError):
    """The online store could not be read."""


@dataclass(frozen=True)
class OnlineRows:
    features: pd.DataFrame  # one row per requested entity, columns = model features
    event_times: list[datetime]


class OnlineFeatureReader:
    """Reads the FeatureService's online features for a batch of entities in one call."""

    def __init__(self, settings: Settings, dataset: DatasetConfig):
        from feature_store.repo import feature_service_name, get_store

        self.dataset = dataset
        self.store = get_store(settings)
        self.service = self.store.get_feature_service(feature_service_name(dataset))

    def read(self, entity_ids: list[str], columns: list[str]) -> OnlineRows:
        key = self.dataset.entity_column
        started = time.perf_counter()
        try:
            response = self.store.get_online_features(
                features=self.service, entity_rows=[{key: e} for e in entity_ids]
            ).to_dict(include_event_timestamps=True)
        except Exception as exc:  # any store/client failure is an unavailable store to callers
            raise StoreUnavailableError(f"online store read failed: {exc}") from exc
        finally:
            FEATURE_FETCH_LATENCY.observe(time.perf_counter() - started)
        frame = pd.DataFrame({c: response[c] for c in columns}, dtype="float64")
        stamps = pd.DataFrame({c: response[f"{c}__ts"] for c in columns}).max(axis=1)
        missing = [e for e, ts in zip(entity_ids, stamps, strict=True) if ts <= 0]
        if missing:
            raise UnknownEntityError(missing)
        times = [datetime.fromtimestamp(int(ts), tz=UTC) for ts in stamps]
        return OnlineRows(features=frame, event_times=times)

    def probe(self) -> None:
        """One real round trip to the online store; raises StoreUnavailableError if it fails."""
        try:
            self.store.get_online_features(
                features=self.service, entity_rows=[{self.dataset.entity_column: "__readiness_probe__"}]
            )
        except Exception as exc:  # any store/client failure means the store is not usable
            raise StoreUnavailableError(f"online store unreachable: {exc}") from exc


@dataclass
class ModelHandle:
    name: str
    version: str
    model: Any
    input_columns: list[str]
    horizon: int
    loaded_at: datetime

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        started = time.perf_counter()
        try:
            return self.model.predict(features)
        finally:
            INFERENCE_LATENCY.observe(time.perf_counter() - started)


def load_champion(settings: Settings, dataset: DatasetConfig) -> ModelHandle:
    import mlflow

    from model_registry.tracking import CHAMPION, client

    name = settings.model_name(dataset.name)
    version = client(settings).get_model_version_by_alias(name, CHAMPION).version
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    inputs = model.metadata.get_input_schema().input_names()
    outputs = model.metadata.get_output_schema().input_names()
    # Warm up once so the first request does not pay lazy initialisation.
    model.predict(pd.DataFrame([[0.0] * len(inputs)], columns=inputs))
    log.info("loaded %s version %s", name, version)
    return ModelHandle(name, str(version), model, inputs, len(outputs), datetime.now(UTC))


@dataclass
class ServingRuntime:
    settings: Settings
    dataset: DatasetConfig
    model: ModelHandle | None = None
    features: OnlineFeatureReader | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.model is not None and self.features is not None

    def load(self) -> None:
        try:
            self.features = OnlineFeatureReader(self.settings, self.dataset)
            self.model = load_champion(self.settings, self.dataset)
            self.error = None
        except Exception as exc:  # keep serving health routes; readiness reports why
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("cannot load model or feature store: %s", self.error)

    def check(self) -> str | None:
        """Why the service cannot answer now (None when it can): not loaded, or store unreachable."""
        if not self.ready:
            return self.error or "loading"
        assert self.features is not None
        try:
            self.features.probe()
        except StoreUnavailableError as exc:
            return str(exc)
        return None

    def step(self) -> timedelta:
        return self.dataset.frequency
