"""Prometheus metrics of the service (exposed at ``/metrics``).

With several uvicorn workers the values live in files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
``python -m model_serving`` before the workers start) and ``/metrics`` sums them over the workers.
The gauges say how: ready only when every live worker is, a version served when any worker serves it.
"""

from __future__ import annotations

import os

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from model_serving.metrics_mode import MULTIPROCESS_ENV


def observe_all(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every value, counted in one pass: the same sum and buckets (a NaN
    adds to the sum and to no bucket), without a Python call per value (a batch of 100 entities
    observes thousands). It reaches into the histogram's value cells, as ``observe`` does; a test holds
    the two to the same exposition."""
    histogram._raise_if_not_observable()
    flat = np.asarray(values, dtype=float).ravel()
    if flat.size == 0:
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=float)  # the last is +Inf
    # observe() counts a value in the first bucket whose bound it does not exceed; a NaN exceeds none
    first = np.searchsorted(bounds, flat[~np.isnan(flat)], side="left")
    with np.errstate(invalid="ignore"):  # +inf and -inf sum to NaN, as observe() adds them
        histogram._sum.inc(float(flat.sum()))
    for bucket, count in enumerate(np.bincount(first, minlength=len(bounds)).tolist()):
        if count:
            histogram._buckets[bucket].inc(count)


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUEST_LATENCY = Histogram(
    "forecast_http_request_duration_seconds",
    "HTTP request latency by route and status.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
FEATURE_FETCH_LATENCY = Histogram(
    "forecast_feature_fetch_duration_seconds", "Online feature read latency.", buckets=LATENCY_BUCKETS
)
INFERENCE_LATENCY = Histogram(
    "forecast_inference_duration_seconds", "Model inference latency.", buckets=LATENCY_BUCKETS
)
BATCH_ENTITIES = Histogram(
    "forecast_batch_entities",
    "Entities per computed batch: concurrent requests are read and predicted together.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
ERRORS = Counter("forecast_errors_total", "Requests that failed, by reason.", ["reason"])
MODEL_READY = Gauge(
    "forecast_model_ready", "1 when a model and the feature store are loaded.", multiprocess_mode="livemin"
)
MODEL_INFO = Gauge(
    "forecast_model_info",
    "1 for the model version being served, 0 for versions served before.",
    ["model", "version"],
    multiprocess_mode="livemax",
)
MODEL_RELOADS = Counter(
    "forecast_model_reloads_total", "Attempts to serve a new champion, by outcome (swapped, failed).", ["outcome"]
)
PREDICTION_VALUES = Histogram(
    "forecast_prediction_value",
    "Forecast values returned (every step of every entity).",
    buckets=(-50, -20, -10, -5, 0, 5, 10, 20, 30, 40, 50, 75, 100, 150, 250, 500, 1000),
)
FEATURE_AGE = Histogram(
    "forecast_feature_age_seconds",
    "Age of the features a forecast used (now minus their event time).",
    buckets=(60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400, 365 * 86400),
)
STALE_FEATURES = Counter(
    "forecast_stale_features_total", "Entities whose features were older than the TTL, by action.", ["action"]
)
MISSING_FEATURES = Counter(
    "forecast_missing_features_total", "Feature values missing from the online store, by feature.", ["feature"]
)

LEDGER_RECORDED = Counter(
    "forecast_ledger_recorded_total", "Answered forecasts written to the forecast table (source 'online')."
)
LEDGER_DROPPED = Counter(
    "forecast_ledger_dropped_total",
    "Answered forecasts not spooled: the spool was past its size limit, or the disk refused the write.",
    ["reason"],
)
LEDGER_DEAD_LETTERED = Counter(
    "forecast_ledger_dead_letter_total",
    "Spooled forecasts the table can never take (unreadable, or refused), moved to the dead-letter folder.",
)
LEDGER_WRITER_RESTARTS = Counter(
    "forecast_ledger_writer_restarts_total", "Ledger writer processes found dead and started again."
)
LEDGER_BACKLOG = Gauge(
    "forecast_ledger_spool_bytes",
    "Spooled bytes of answered forecasts not yet in the forecast table.",
    multiprocess_mode="livesum",
)
LEDGER_UNWRITTEN_SECONDS = Gauge(
    "forecast_ledger_unwritten_seconds",
    "Seconds since the ledger's writer last wrote, while answered forecasts wait in the spool (0: none wait).",
    multiprocess_mode="livemax",
)

# Every known label value starts at 0, so a dashboard or alert sees "none yet" rather than no series.
for _outcome in ("swapped", "failed"):
    MODEL_RELOADS.labels(outcome=_outcome)
for _action in ("served", "refused"):
    STALE_FEATURES.labels(action=_action)
for _reason in ("unknown_entity", "store_unavailable", "stale_features", "not_ready"):
    ERRORS.labels(reason=_reason)
for _reason in ("spool_full", "spool_failed"):
    LEDGER_DROPPED.labels(reason=_reason)


def exposition(workers: int) -> bytes:
    """The text ``/metrics`` answers: this process's registry, or every worker's files summed."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if workers > 1 and directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
    return generate_latest()
