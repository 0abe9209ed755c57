"""The serving benchmark's runs: each system loaded at fixed rates by :mod:`benchmarks.loadgen` in a
process of its own, one row per run.

Before its runs a server answers one checked request and a warm-up load; before and after each run
it is drained (whatever an overloaded run left queued is worked off), so no run starts behind the
previous one. Our service's own histograms, read before and after a run, say where its time went.
Pairs of services are loaded in turns and their rounds pooled (:func:`in_turns`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.serving.plan import (
    FEAST,
    FLOOR,
    MLFLOW,
    OURS,
    OURS_BANDS,
    OURS_LEDGER_ON,
    OURS_NO_LEDGER,
    OURS_NO_LEDGER_AGAIN,
    OURS_POINT_ONLY,
    OURS_POINT_ONLY_AGAIN,
    POOLED,
    WARMUP_SECONDS,
)
from benchmarks.serving.servers import feast_server, floor_server, invocation_body, mlflow_server, our_service
from core.dataset import DatasetConfig
from core.progress import progress
from core.settings import Settings

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_SECONDS = 120.0

# The service's Prometheus histograms whose mean per run tells where a request's time goes:
# (metric, labels to match, scale of the mean). Fetch and predict are timed per batch.
SERVER_HISTOGRAMS = {
    "server_mean_ms": ("forecast_http_request_duration_seconds", {"route": "/v1/forecast"}, 1000.0),
    "fetch_mean_ms": ("forecast_feature_fetch_duration_seconds", {}, 1000.0),
    "predict_mean_ms": ("forecast_inference_duration_seconds", {}, 1000.0),
    "batch_mean_entities": ("forecast_batch_entities", {}, 1.0),
}


def post(url: str, body: bytes) -> float:
    """One request that must succeed; returns its seconds. A wrong body fails here, not as thousands of errors."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered {exc.code}: {exc.read().decode()[:500]}") from None
    return time.perf_counter() - started


def idle_seconds(url: str, body: bytes, requests: int = 20) -> float:
    """Median seconds of one request to an otherwise idle server."""
    times = sorted(post(url, body) for _ in range(requests))
    return times[len(times) // 2]


def drain(url: str, body: bytes, idle: float) -> None:
    """Wait until the server has worked off what an overloaded run left queued.

    Requests whose client gave up still run to the end inside the server; the next rate must not
    start behind them. Drained: one request answers within twice the idle time (+5 ms).
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError, OSError):
            if post(url, body) < 2 * idle + 0.005:
                return
    log.warning("%s still slow after %.0fs; measuring anyway", url, DRAIN_TIMEOUT_SECONDS)


def load(url: str, body_file: Path, rate: float, seconds: float, latencies: Path | None = None) -> dict[str, Any]:
    """One fixed-rate run of :mod:`benchmarks.loadgen` in its own process (its answered latencies
    saved to ``latencies`` when given); a ``.jsonl`` file holds several bodies, sent in turn."""
    flag = "--bodies-file" if body_file.suffix == ".jsonl" else "--body-file"
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, flag, str(body_file)]
    argv += ["--rate", str(rate), "--seconds", str(seconds)]
    if latencies is not None:
        argv += ["--latencies-file", str(latencies)]
    result: dict[str, Any] = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    return result


def histogram_totals(base_url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each of the service's histograms in SERVER_HISTOGRAMS; empty if unavailable.

    With several workers ``/metrics`` sums them all, so any worker's answer will do.
    """
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=30) as response:
            text = response.read().decode()
    except OSError as exc:
        log.warning("cannot read %s/metrics: %s", base_url, exc)
        return {}
    totals: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for key, (metric, labels, _) in SERVER_HISTOGRAMS.items():
            if family.name != metric:
                continue
            picked = [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]
            total = sum(s.value for s in picked if s.name == f"{metric}_sum")
            count = sum(s.value for s in picked if s.name == f"{metric}_count")
            totals[key] = (total, count)
    return totals


def server_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean per observation between two scrapes (milliseconds for durations)."""
    means: dict[str, float] = {}
    for key, (total, count) in after.items():
        old_total, old_count = before.get(key, (0.0, 0.0))
        if count > old_count:
            means[key] = round((total - old_total) / (count - old_count) * SERVER_HISTOGRAMS[key][2], 3)
    return means


def warm_up(url: str, body: dict[str, Any], rate: int, system: str, scratch: Path) -> tuple[Path, float]:
    """Check one request and warm the server up: (the body's file, the idle request seconds)."""
    body_file = scratch / f"{system.split(':')[0].replace(' ', '-').replace(',', '')}-body.json"
    body_file.write_text(json.dumps(body))
    post(url, body_file.read_bytes())
    load(url, body_file, rate, WARMUP_SECONDS)
    return body_file, idle_seconds(url, body_file.read_bytes())


def run_at(
    system: str,
    url: str,
    body_file: Path,
    idle: float,
    rate: int,
    seconds: float,
    workers: int,
    metrics_url: str | None = None,
    latencies: Path | None = None,
) -> dict[str, Any]:
    """One run at ``rate`` on a drained server, and the server drained after it: one row."""
    drain(url, body_file.read_bytes(), idle)
    before = histogram_totals(metrics_url) if metrics_url else {}
    result = load(url, body_file, rate, seconds, latencies)
    drain(url, body_file.read_bytes(), idle)  # what timed out at the client still ran: count it too
    extra = server_means(before, histogram_totals(metrics_url)) if metrics_url else {}
    row = {
        "system": system,
        "rate_rps": rate,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "achieved_rps": result["achieved_rps"],
        "errors": result["errors"],
        "requests": result["requests"],
        "seconds": seconds,
        "workers": workers,
        "send_lag_p99_ms": result["send_lag_p99_ms"],
        **extra,
    }
    log.info("%s", row)
    return row


def measure(
    system: str,
    url: str,
    body: dict[str, Any],
    rates: tuple[int, ...],
    seconds: float,
    workers: int,
    scratch: Path,
    metrics_url: str | None = None,
) -> list[dict[str, Any]]:
    """Check one request, warm the server up, then one run per rate; one row per rate."""
    body_file, idle = warm_up(url, body, rates[0], system, scratch)
    with progress(rates, desc=system.split(":")[0], unit="rate") as bar:
        return [run_at(system, url, body_file, idle, rate, seconds, workers, metrics_url) for rate in bar]


def ours(
    settings: Settings,
    workers: int,
    rates: tuple[int, ...],
    seconds: float,
    entity: str,
    logs: Path,
) -> list[dict[str, Any]]:
    with our_service(settings, workers, logs) as (base, _):
        return measure(OURS, f"{base}/v1/forecast", {"entity_id": entity}, rates, seconds, workers, logs, base)


def ledger_cost(
    settings: Settings, rate: int, seconds: float, rounds: int, entity: str, logs: Path
) -> list[dict[str, Any]]:
    """Ours with the forecast ledger on, off, and off again (a second copy), loaded in turns at ``rate``."""
    quiet = settings.model_copy(update={"forecast_ledger": False})
    services = {OURS_LEDGER_ON: settings, OURS_NO_LEDGER: quiet, OURS_NO_LEDGER_AGAIN: quiet}
    return in_turns(services, rate, seconds, rounds, entity, logs, "ledger")


def bands_cost(
    settings: Settings, point_only: Settings, rate: int, seconds: float, rounds: int, entity: str, logs: Path
) -> list[dict[str, Any]]:
    """Ours serving the champion with its bands, and twice its point-only copy (``point_only``: the
    settings whose registered model is that copy), loaded in turns at ``rate``."""
    services = {OURS_BANDS: settings, OURS_POINT_ONLY: point_only, OURS_POINT_ONLY_AGAIN: point_only}
    return in_turns(services, rate, seconds, rounds, entity, logs, "bands")


def in_turns(
    services: dict[str, Settings], rate: int, seconds: float, rounds: int, entity: str, logs: Path, name: str
) -> list[dict[str, Any]]:
    """Services of ours (system -> its settings), all up at once, loaded in turns at ``rate``.

    Each round loads them one after the other, the order rotated every round, so none always runs
    first after a drain; each row carries its round. A last row per system (round ``"all"``) pools
    the latencies of all its rounds: the machine's slow spells fall on every system's turns alike,
    and the p99 of ``rounds`` times more requests is the steadier figure a target is decided on.
    """
    body = {"entity_id": entity}
    systems = list(services)
    with contextlib.ExitStack() as stack:
        bases = {system: stack.enter_context(our_service(services[system], 1, logs))[0] for system in systems}
        warm = {system: warm_up(f"{base}/v1/forecast", body, rate, system, logs) for system, base in bases.items()}
        rows = []
        files: dict[str, list[Path]] = {system: [] for system in systems}
        with progress(total=rounds * len(systems), desc=f"{name} in turns", unit="run") as bar:
            for round_ in range(rounds):
                shift = round_ % len(systems)
                for system in systems[shift:] + systems[:shift]:
                    base = bases[system]
                    body_file, idle = warm[system]
                    latencies = logs / f"{name}-{systems.index(system)}-round-{round_}.npy"
                    row = run_at(system, f"{base}/v1/forecast", body_file, idle, rate, seconds, 1, base, latencies)
                    rows.append({**row, "round": round_})
                    files[system].append(latencies)
                    bar.update()
    for system in systems:
        rows.append(pooled_row([r for r in rows if r["system"] == system], files[system]))
    return rows


def pooled_row(runs: list[dict[str, Any]], latencies: list[Path]) -> dict[str, Any]:
    """One row for several runs of one system at one rate: percentiles over all their answered requests."""
    import numpy as np

    pooled = np.concatenate([np.load(path) for path in latencies])
    requests = sum(int(r["requests"]) for r in runs)
    seconds = sum(float(r["seconds"]) for r in runs)
    return {
        "system": runs[0]["system"],
        "rate_rps": runs[0]["rate_rps"],
        "round": POOLED,
        "p50_ms": round(float(np.percentile(pooled, 50)), 3) if pooled.size else None,
        "p99_ms": round(float(np.percentile(pooled, 99)), 3) if pooled.size else None,
        "achieved_rps": round(sum(float(r["achieved_rps"]) * float(r["seconds"]) for r in runs) / seconds, 1),
        "errors": sum(int(r["errors"]) for r in runs),
        "requests": requests,
        "seconds": seconds,
        "workers": runs[0]["workers"],
    }


def floor(
    settings: Settings, config: Path, rates: tuple[int, ...], seconds: float, entity: str, logs: Path
) -> list[dict[str, Any]]:
    """The floor (:func:`benchmarks.serving.servers.floor_server`) at each rate, asked what ours is."""
    with floor_server(settings, config, logs) as base:
        url = f"{base}/v1/forecast"
        return measure(FLOOR, url, {"entity_id": entity}, rates, seconds, 1, logs)  # the request ours gets


def feast_serve(
    settings: Settings, dataset: DatasetConfig, rates: tuple[int, ...], seconds: float, entity: str, logs: Path
) -> list[dict[str, Any]]:
    """``feast serve``'s ``get-online-features`` of the same feature service and entity at each rate."""
    from feature_store.repo import feature_service_name

    body = {"feature_service": feature_service_name(dataset), "entities": {dataset.entity_column: [entity]}}
    with feast_server(settings, logs) as base:
        return measure(FEAST, f"{base}/get-online-features", body, rates, seconds, 1, logs)


def mlflow_serve(
    settings: Settings,
    dataset: DatasetConfig,
    version: str,
    rates: tuple[int, ...],
    seconds: float,
    entity: str,
    logs: Path,
) -> list[dict[str, Any]]:
    """``mlflow models serve``'s ``invocations`` of the same bundle with the entity's feature row; none
    for a per-series champion, whose rows also bring their entity, time and history, which no feature
    row of the online store holds (the row says so)."""
    import mlflow

    from model_bundle.outputs import history_input

    info = mlflow.models.get_model_info(f"models:/{settings.model_name(dataset.name)}/{version}")
    if info.signature is not None and history_input(info.signature.inputs) is not None:
        log.warning("mlflow models serve: v%s forecasts from each series' history; not measured", version)
        return [
            {"system": f"{MLFLOW} (not measured: a per-series champion)", "rate_rps": rate, "p50_ms": None,
             "p99_ms": None, "achieved_rps": None, "errors": None, "requests": 0, "seconds": 0.0, "workers": 1}
            for rate in rates
        ]  # fmt: skip
    body = invocation_body(settings, dataset, version, entity)
    with mlflow_server(settings, dataset, version, logs) as base:
        return measure(MLFLOW, f"{base}/invocations", body, rates, seconds, 1, logs)


def compare_read_paths(
    settings: Settings, dataset: DatasetConfig, entity: str, calls: int = 500
) -> list[dict[str, Any]]:
    """In-process latency of the two online read paths over the same Redis data: the evidence for
    serving through the direct read (both return the same rows; a test holds them equal)."""
    from core.columns import feature_names
    from feature_store.repo import get_store
    from model_serving.online_features import FeastReader, FeatureReader, RedisReader

    store = get_store(settings)
    columns = feature_names(dataset)
    readers: dict[str, FeatureReader] = {
        "feast get_online_features": FeastReader(settings, dataset, store),
        "direct redis read": RedisReader(settings, dataset, store),
    }
    rows = []
    for name, reader in readers.items():
        for batch in ([entity], [entity] * 100):
            for _ in range(50):
                reader.read(batch, columns)
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                reader.read(batch, columns)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
            rows.append({"read_path": name, "entities": len(batch), "calls": calls, "p50_ms": p50, "p99_ms": p99})
    return rows
