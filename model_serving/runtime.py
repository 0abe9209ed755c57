"""What the service loads once at startup: the champion bundle and the online feature reader."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from core.frequency import Frequency
from core.settings import Settings
from model_bundle.intervals import BandSource
from model_bundle.outputs import feature_inputs, history_input, point_columns, time_input
from model_serving.ledger import ForecastLedger
from model_serving.metrics import INFERENCE_LATENCY, MODEL_INFO, MODEL_RELOADS
from model_serving.online_features import (
    FeatureReader,
    OnlineRows,
    StoreUnavailableError,
    UnknownEntityError,
    open_reader,
)

__all__ = ["OnlineRows", "StoreUnavailableError", "UnknownEntityError"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeriesChoice:
    """What a bundle that chose among candidates forecasts each series with: the candidates it names
    per series, and the dataset's for any other (a series that appeared after training)."""

    default: list[str]
    series: dict[str, list[str]]
    combine: str | None = None  # how several candidates combine (median, mean, weighted)
    default_weights: list[float] | None = None  # a weighted combination's, in the candidates' order
    weights: dict[str, list[float]] | None = None

    def of(self, entity: str) -> list[str]:
        return self.series.get(entity, self.default)


@dataclass
class ModelHandle:
    """One registry version, loaded and warmed; replaced as a whole, never changed in place."""

    name: str
    version: str
    model: Any
    input_columns: list[str]
    horizon: int
    loaded_at: datetime
    tags: dict[str, str] = field(default_factory=dict)  # the version's registry tags at load time
    predictor: Callable[[pd.DataFrame], np.ndarray] | None = None
    calibration: BandSource | None = None  # the version's prediction intervals (None: point forecasts only)
    # A per-series model's inputs besides the features: each row's history and its time (None: a
    # model of feature rows alone).
    history_column: str | None = None
    time_column: str | None = None
    entity_column: str | None = None
    family: str | None = None  # the bundle's (None: a bundle that does not say)
    # The candidates each entity's forecast comes from, for a bundle that chose among candidates.
    choice: SeriesChoice | None = None
    files: Path | None = None  # the bundle's local copy, removed once this handle is let go

    def release(self) -> None:
        """Remove the bundle's local copy: called once the handle no longer serves (a swap, the end
        of the process), so a service that follows the champion for months keeps one copy, not one
        per promotion."""
        if self.files is not None:
            from model_registry.provenance import discard

            discard(self.files)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """(rows, H) forecasts of the feature rows (columns: ``input_columns``, float64)."""
        started = time.perf_counter()
        try:
            if self.predictor is not None:
                return self.predictor(features)
            return np.asarray(self.model.predict(features), dtype=np.float64)
        finally:
            INFERENCE_LATENCY.observe(time.perf_counter() - started)


def _direct_predictor(model: Any) -> Callable[[pd.DataFrame], np.ndarray] | None:
    """The bundle's own array ``predict``, skipping the PyFunc's per-call input schema enforcement
    and the output frame.

    The service builds every input frame itself, from the signature's columns in float64, so the
    check (milliseconds per call, more than the model) is done once at load instead: the warm-up
    below goes through the full PyFunc path and must give the same numbers.
    """
    try:
        bundle = model.unwrap_python_model()
    except Exception:  # not a Python-model bundle: keep the generic path
        return None
    predict_array = getattr(bundle, "predict_array", None)
    if callable(predict_array):
        return predict_array
    return lambda features: np.asarray(bundle.predict(None, features), dtype=np.float64)  # bundles of older code


def champion_version(settings: Settings, dataset: DatasetConfig) -> str:
    """The version the registry's ``champion`` alias points to now."""
    from model_registry.tracking import CHAMPION, client

    name = settings.model_name(dataset.name)
    return str(client(settings).get_model_version_by_alias(name, CHAMPION).version)


def load_version(settings: Settings, dataset: DatasetConfig, version: str) -> ModelHandle:
    """Load and warm one registry version; raises if it cannot serve, so callers never hold half a model.

    Only from the registry's own store and only the files registered (``UntrustedModelError``
    otherwise): the service runs the bundle's code, so a re-pointed alias must not choose it.
    """
    from model_registry.provenance import discard, load_trusted_copy
    from model_registry.tracking import client

    name = settings.model_name(dataset.name)
    tags = dict(client(settings).get_model_version(name, version).tags)
    model, files = load_trusted_copy(settings, name, version)
    try:
        return _warmed(dataset, name, version, tags, model, files)
    except BaseException:
        discard(files)  # a version that cannot serve leaves no copy behind
        raise


def _warmed(
    dataset: DatasetConfig, name: str, version: str, tags: dict[str, str], model: Any, files: Path
) -> ModelHandle:
    """The handle of a loaded model, once its warm-up went through both predict paths alike."""
    schema = model.metadata.get_input_schema()
    inputs = feature_inputs(schema)
    history, stamp = history_input(schema), time_input(schema)
    points = point_columns(model.metadata.get_output_schema().input_names())
    # Warm up both paths, so the first request pays no lazy initialisation and the two agree.
    example = pd.DataFrame([[0.0] * len(inputs)], columns=inputs)
    if history is not None and stamp is not None:  # an entity of no model: its last value, warmed all the same
        example[dataset.entity_column] = "__warm_up__"
        example[stamp] = pd.Timestamp(datetime.now(UTC)).tz_localize(None).floor("s")
        example[history] = [np.zeros(dataset.history_length)]
    checked = model.predict(example)
    predictor = _direct_predictor(model)
    if predictor is not None:
        np.testing.assert_array_equal(predictor(example), checked[points].to_numpy(dtype=np.float64))
    calibration = _calibration(model)
    family, choice = _family(model)
    log.info("loaded %s version %s (%s)", name, version, "with intervals" if calibration else "point forecasts only")
    return ModelHandle(
        name,
        str(version),
        model,
        inputs,
        len(points),
        datetime.now(UTC),
        tags,
        predictor,
        calibration,
        history,
        stamp,
        dataset.entity_column,
        family,
        choice,
        files,
    )


def _family(model: Any) -> tuple[str | None, SeriesChoice | None]:
    """The bundle's family and, where it chose among candidates, its choice per entity."""
    try:
        bundle = model.unwrap_python_model()
    except Exception:
        return None, None
    family = getattr(bundle, "meta", {}).get("family")
    forecaster = getattr(bundle, "forecaster", None)
    default, series = getattr(forecaster, "default", None), getattr(forecaster, "choice", None)
    if not isinstance(default, list) or not isinstance(series, dict):
        return family, None
    weights = getattr(forecaster, "weights", None) if getattr(forecaster, "combine", None) == "weighted" else None
    return family, SeriesChoice(
        [str(n) for n in default],
        {str(e): [str(n) for n in c] for e, c in series.items()},
        combine=getattr(forecaster, "combine", None),
        default_weights=getattr(forecaster, "default_weights", None) if weights is not None else None,
        weights=weights,
    )


def _calibration(model: Any) -> BandSource | None:
    """The bundle's interval calibration; None for a version registered without one."""
    try:
        bundle = model.unwrap_python_model()
    except Exception:
        return None
    calibration = getattr(bundle, "calibration", None)
    return calibration if callable(getattr(calibration, "bands", None)) else None


def load_champion(settings: Settings, dataset: DatasetConfig) -> ModelHandle:
    return load_version(settings, dataset, champion_version(settings, dataset))


def freeze_loaded() -> None:
    """Keep the garbage collector off what the service has loaded (the model, the feature reader, the
    imported libraries): a full collection walks every tracked object, and with a model of many series
    loaded it stalled requests for hundreds of milliseconds. What requests allocate is collected as
    before. Called once ready, and again after a swap: unfrozen first, so that one full collection
    frees what the replaced version left in cycles."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass
class ServingRuntime:
    settings: Settings
    dataset: DatasetConfig
    model: ModelHandle | None = None
    features: FeatureReader | None = None
    error: str | None = None
    last_reload_error: str | None = None  # why the newest champion is not served (None: it is)
    ledger: ForecastLedger | None = None  # where answered forecasts are recorded (None: nowhere)
    _reloading: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.features is not None

    def load(self) -> None:
        try:
            self.features = open_reader(self.settings, self.dataset)
            self.serve(load_champion(self.settings, self.dataset))
            self.error = None
        except Exception as exc:  # keep serving health routes; readiness reports why
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("cannot load model or feature store: %s", self.error)

    def refresh_model(self) -> bool:
        """Serve the version ``champion`` points to now; True when the served model was swapped.

        A promotion or rollback is picked up without a restart. The new version is loaded and warmed
        before one assignment swaps it in, so requests see the old model or the new one, never a
        half-loaded one; if it cannot load, the current model keeps serving.
        """
        with self._reloading:  # the watcher and /admin/reload never load the same version twice at once
            version = champion_version(self.settings, self.dataset)
            current = self.model
            if current is not None and current.version == version:
                self.last_reload_error = None
                return False
            try:
                handle = load_version(self.settings, self.dataset, version)
            except Exception as exc:  # a broken version must not take the service down
                self.last_reload_error = f"cannot load version {version}: {type(exc).__name__}: {exc}"
                MODEL_RELOADS.labels(outcome="failed").inc()
                log.error("keeping version %s: %s", current.version if current else None, self.last_reload_error)
                return False
            self.serve(handle)
            if gc.get_freeze_count():  # a service that froze its first load (not a runtime used alone)
                freeze_loaded()
            MODEL_RELOADS.labels(outcome="swapped").inc()
            log.info("now serving %s version %s (was %s)", handle.name, version, current.version if current else None)
            return True

    def serve(self, handle: ModelHandle) -> None:
        """Swap in a loaded, warmed model (one assignment) and tell Prometheus which version serves."""
        previous = self.model
        self.model = handle
        self.last_reload_error = None
        if previous is not None and previous.version != handle.version:
            MODEL_INFO.labels(model=previous.name, version=previous.version).set(0)
        MODEL_INFO.labels(model=handle.name, version=handle.version).set(1)
        if previous is not None and previous is not handle:
            # A request that took the previous handle before the swap still predicts from memory:
            # the warm-up imported the bundle's code, so its files are no longer read.
            previous.release()

    def close(self) -> None:
        """The end of the service: the served bundle's local copy goes with it."""
        if self.model is not None:
            self.model.release()

    def check(self) -> tuple[str, str | None] | None:
        """Why the service cannot answer now, as (a stable reason a client may read, its cause for the
        log: an exception's text, with hosts, paths and versions; None while it is still loading); None
        when it can."""
        if not self.ready:
            return ("no model loaded", self.error) if self.error else ("loading", None)
        assert self.features is not None
        try:
            self.features.probe()
        except StoreUnavailableError as exc:
            return "online store unreachable", str(exc)
        return None

    def frequency(self) -> Frequency:
        return self.dataset.frequency
