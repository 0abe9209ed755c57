"""Prometheus metrics of the service (exposed at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
ERRORS = Counter("forecast_errors_total", "Requests that failed, by reason.", ["reason"])
MODEL_READY = Gauge("forecast_model_ready", "1 when a model and the feature store are loaded.")
