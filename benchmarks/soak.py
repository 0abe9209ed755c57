"""Soak benchmark: ``python -m benchmarks.soak --out reports``.

The forecasting service under one steady, open-loop load for a long time (default 200 rps for 10
minutes, one worker), all on 127.0.0.1: does its p99 or its memory creep up? The setup is the
serving benchmark's (:mod:`benchmarks.serving.servers`: its home, champion and throwaway Redis); the
load is :mod:`benchmarks.loadgen` on one continuous schedule, reported per window (default 30 s),
and at the end of each window the service's resident memory is read (its worker processes
included). Writes ``soak.json`` and ``soak.md``: the windows, a summary, and whether the run stayed
flat by the criteria stated there. A run that did not stay flat is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.serving import plan
from benchmarks.serving.measurement import post
from benchmarks.serving.servers import bench_stack, our_service
from core.progress import progress
from core.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

RATE = 200.0
SECONDS = 600.0
WINDOW_SECONDS = 30.0
WORKERS = 1

# "Flat": judged after the first window, which also warms the service up (first batches, caches,
# allocator arenas) and would otherwise count as growth.
RSS_GROWTH_LIMIT = 0.05  # end-of-run RSS within 5% of the RSS at the end of the first window
P99_RATIO_LIMIT = 1.5  # median p99 of the last third of the windows within 1.5x that of the first third
MAX_ERROR_SHARE = plan.MAX_ERROR_SHARE
MIN_WINDOWS = 3  # the warm-up window, and at least one window in each third to compare


def rss_mb(process: psutil.Process) -> float:
    """Resident memory of the process and all its descendants (uvicorn's workers) in MB.

    Pages the workers share with their parent count once per process, so with several workers this
    overstates the total; it is compared with itself, run against run, so that does not matter.
    """
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:  # a worker that exited between listing and reading
            continue
    return round(total / 2**20, 1)


def _median(values: list[float | None]) -> float | None:
    """Median p99 over windows; a window without a single answer has none, and then neither has the median."""
    if not values or any(v is None for v in values):
        return None
    return round(float(statistics.median(v for v in values if v is not None)), 3)


def summarize(windows: list[dict[str, Any]], rss_start_mb: float) -> dict[str, Any]:
    """The soak's figures and its verdict from the per-window rows (``p99_ms``, ``rss_mb``, ...).

    ``rss_mb`` of a window is read at its end; ``rss_start_mb`` before the load began. ``flat`` is
    None when the run has too few windows to compare a first third with a last one.
    """
    requests = sum(w["requests"] for w in windows)
    errors = sum(w["errors"] for w in windows)
    p99s = [w["p99_ms"] for w in windows]
    answered = [(p, i) for i, p in enumerate(p99s) if p is not None]
    summary: dict[str, Any] = {
        "windows": len(windows),
        "requests": requests,
        "errors": errors,
        "error_share": round(errors / requests, 6) if requests else None,
        "rss_start_mb": rss_start_mb,
        "rss_end_mb": windows[-1]["rss_mb"] if windows else None,
        "rss_growth_mb": round(windows[-1]["rss_mb"] - rss_start_mb, 1) if windows else None,
        "p99_first_window_ms": p99s[0] if windows else None,
        "p99_last_window_ms": p99s[-1] if windows else None,
        "p99_max_ms": max(answered)[0] if answered else None,
        "p99_max_window": max(answered)[1] if answered else None,
    }
    if len(windows) < MIN_WINDOWS:
        summary["criteria"] = []
        summary["flat"] = None
        return summary

    warm = windows[0]["rss_mb"]
    growth = (windows[-1]["rss_mb"] - warm) / warm
    measured = p99s[1:]
    third = max(1, len(measured) // 3)
    first, last = _median(measured[:third]), _median(measured[-third:])
    ratio = round(last / first, 3) if first and last is not None else None
    summary.update(
        rss_after_warmup_mb=warm,
        rss_growth_after_warmup_pct=round(growth * 100, 2),
        p99_first_third_median_ms=first,
        p99_last_third_median_ms=last,
        p99_last_to_first_third=ratio,
        windows_per_third=third,
    )
    summary["criteria"] = [
        {
            "criterion": f"RSS grows less than {RSS_GROWTH_LIMIT:.0%} from the end of the first (warm-up) window "
            "to the end of the run",
            "value": f"{growth:+.2%} ({warm} -> {windows[-1]['rss_mb']} MB)",
            "met": growth < RSS_GROWTH_LIMIT,
        },
        {
            "criterion": f"median p99 of the last {third} window(s) at most {P99_RATIO_LIMIT:g}x that of the first "
            f"{third} after the warm-up window",
            "value": f"{last} ms vs {first} ms (x{ratio})" if ratio is not None else "a window had no answers",
            "met": ratio is not None and ratio <= P99_RATIO_LIMIT,
        },
        {
            "criterion": f"errors under {MAX_ERROR_SHARE:.0%} of the requests",
            "value": f"{errors} of {requests}",
            "met": requests > 0 and errors / requests < MAX_ERROR_SHARE,
        },
    ]
    summary["flat"] = all(c["met"] for c in summary["criteria"])
    return summary


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def markdown(report: dict[str, Any]) -> str:
    params, summary, windows = report["parameters"], report["summary"], report["windows"]
    verdict = {True: "flat", False: "**not flat**", None: "too short to judge"}[summary["flat"]]
    lines = [
        "# Serving soak",
        "",
        f"`POST /v1/forecast` for entity `{params['entity']}` at {params['rate_rps']:g} rps for "
        f"{params['seconds']:g} s on one open-loop schedule (uvicorn workers: {params['workers']}), reported "
        f"per {params['window_seconds']:g} s window; `{params['model']}` v{params['version']}, features in a local "
        f"`redis-server`, client and service on 127.0.0.1 of this machine ({params['machine']}, "
        f"{params['cpus']} CPUs), started {params['started_at']}. RSS is the service's resident memory "
        "(with its worker processes), read before the load and at the end of each window; latency is from "
        "sending a request to reading its answer.",
        "",
        f"Verdict: **{verdict}**",
        "",
        *[f"- {c['criterion']}: **{_met(c['met'])}** ({c['value']})" for c in summary["criteria"]],
        "",
        "| summary | value |",
        "|---|---:|",
        f"| RSS at start | {summary['rss_start_mb']} MB |",
        f"| RSS at end | {summary['rss_end_mb']} MB |",
        f"| RSS growth | {summary['rss_growth_mb']} MB |",
        f"| RSS growth after the warm-up window | {summary.get('rss_growth_after_warmup_pct', 'n/a')} % |",
        f"| p99 first window | {summary['p99_first_window_ms']} ms |",
        f"| p99 last window | {summary['p99_last_window_ms']} ms |",
        f"| median p99, first third (after warm-up) | {summary.get('p99_first_third_median_ms', 'n/a')} ms |",
        f"| median p99, last third | {summary.get('p99_last_third_median_ms', 'n/a')} ms |",
        f"| max p99 (window) | {summary['p99_max_ms']} ms ({summary['p99_max_window']}) |",
        f"| errors | {summary['errors']} of {summary['requests']} |",
        "",
        "| window | from s | requests | errors | achieved rps | p50 ms | p99 ms | send lag p99 ms | "
        "service RSS MB | driver RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {w['window']} | {w['started_s']:g} | {w['requests']} | {w['errors']} | {w['achieved_rps']} | "
            f"{w['p50_ms']} | {w['p99_ms']} | {w['send_lag_p99_ms']} | {w['rss_mb']} | {w['driver_rss_mb']} |"
            for w in windows
        ],
    ]
    return "\n".join(lines) + "\n"


def soak(
    url: str, service: psutil.Process, rate: float, seconds: float, window: float, logs: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drive ``url`` with the load generator; one row per window, the service's RSS read as each ends."""
    body_file = logs / "soak-body.json"
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--body-file", str(body_file)]
    argv += ["--rate", str(rate), "--seconds", str(seconds), "--window", str(window)]
    rows: list[dict[str, Any]] = []
    overall: dict[str, Any] = {}
    # As many windows as the load generator cuts its schedule into (requests per window, rounded).
    windows = math.ceil(max(1, round(rate * seconds)) / max(1, round(rate * window)))
    with (logs / "soak-loadgen.log").open("w") as errors, progress(total=windows, desc="soak", unit="window") as bar:
        driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True)
        driver_process = psutil.Process(driver.pid)
        assert driver.stdout is not None
        for line in driver.stdout:
            result = json.loads(line)
            if "window" not in result:
                overall = result
                continue
            row = {**result, "rss_mb": rss_mb(service), "driver_rss_mb": rss_mb(driver_process)}
            log.info("window %s", row)
            rows.append(row)
            bar.set_postfix_str(f"p99 {row.get('p99_ms')} ms, RSS {row['rss_mb']} MB")
            bar.update()
        if driver.wait() != 0:
            raise RuntimeError(f"the load generator exited with code {driver.returncode}: {errors.name}")
    return rows, overall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--home", type=Path, default=plan.DEFAULT_HOME, help="shared with the serving benchmark")
    parser.add_argument("--dataset", type=Path, default=PROJECT_ROOT / "configs" / "datasets" / "ett.yaml")
    parser.add_argument("--logical-date", type=date.fromisoformat, default=plan.LOGICAL_DATE)
    parser.add_argument("--entity", default=plan.ENTITY)
    parser.add_argument("--rate", type=float, default=RATE, help="requests per second")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="length of the load")
    parser.add_argument("--window", type=float, default=WINDOW_SECONDS, help="seconds per reported window")
    parser.add_argument("--workers", type=int, default=WORKERS, help="uvicorn worker processes")
    parser.add_argument("--retrain", action="store_true", help="train and promote a new champion first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with bench_stack(args.home, args.dataset, args.logical_date, args.retrain) as bench:
        settings, dataset, version, logs = bench.settings, bench.dataset, bench.version, bench.logs
        with our_service(settings, args.workers, logs) as (base, process):
            url = f"{base}/v1/forecast"
            body = json.dumps({"entity_id": args.entity}).encode()
            (logs / "soak-body.json").write_bytes(body)
            post(url, body)
            service = psutil.Process(process.pid)
            rss_start = rss_mb(service)
            log.info("service RSS before the load: %s MB", rss_start)
            started_at = datetime.now(UTC).isoformat(timespec="seconds")
            began = time.monotonic()
            windows, overall = soak(url, service, args.rate, args.seconds, args.window, logs)
            log.info("load done in %.0fs", time.monotonic() - began)

    report = {
        "parameters": {
            "rate_rps": args.rate,
            "seconds": args.seconds,
            "window_seconds": args.window,
            "workers": args.workers,
            "entity": args.entity,
            "model": settings.model_name(dataset.name),
            "version": version,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "started_at": started_at,
        },
        "summary": summarize(windows, rss_start),
        "windows": windows,
        "overall": overall,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "soak.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
