"""``python -m benchmarks.loadgen``: HTTP POST load at a fixed arrival rate; prints one JSON summary.

Request ``i`` is sent at ``start + i / rate`` whether or not earlier ones have answered, so a slow
server meets a growing queue rather than a client that politely waits (no coordinated omission).
``hey -q`` is not used for this: its per-worker rate limit starts every worker's ticker at the same
instant, so it sends bursts of ``-c`` simultaneous requests and measures the burst more than the
rate, and its CSV output leaves out requests that failed. The benchmark runs this module in a
process of its own, so nothing the benchmark imports (Feast, MLflow) shares the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import numpy as np
import uvloop

NO_RESPONSE = 0  # status recorded for a request that got no HTTP answer (refused, reset, timed out)
WARMUP_REQUESTS = 50  # sent one by one, unmeasured: the first connection and code paths are slow


@dataclass(frozen=True)
class LoadResult:
    """What one run at one rate measured; latencies are from sending a request to reading its body."""

    rate_rps: float
    seconds: float
    requests: int
    errors: int  # non-2xx answers plus requests without an answer
    p50_ms: float | None  # over requests that got an answer, whatever its status
    p99_ms: float | None
    achieved_rps: float  # 2xx answers per second, from the first send to the last answer
    send_lag_p99_ms: float  # how late the driver sent, against its schedule: large means it was CPU-starved


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[float, float, int]:
    """One request: (seconds taken, finish time, status or NO_RESPONSE)."""
    started = time.perf_counter()
    status = NO_RESPONSE
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        pass
    finished = time.perf_counter()
    return finished - started, finished, status


def answered_ms(results: list[tuple[float, float, int]]) -> np.ndarray:
    """The latencies, in milliseconds, of the requests that got an answer, whatever its status."""
    return np.array([taken for taken, _, status in results if status != NO_RESPONSE], dtype=float) * 1000


def summarize(
    results: list[tuple[float, float, int]], lags: list[float], rate: float, seconds: float, start: float
) -> LoadResult:
    """The figures of ``results`` (one tuple per request) whose schedule began at ``start``."""
    latencies = answered_ms(results)
    ok = sum(200 <= status < 300 for _, _, status in results)
    elapsed = max(finished for _, finished, _ in results) - start
    return LoadResult(
        rate_rps=rate,
        seconds=seconds,
        requests=len(results),
        errors=len(results) - ok,
        p50_ms=round(float(np.percentile(latencies, 50)), 3) if latencies.size else None,
        p99_ms=round(float(np.percentile(latencies, 99)), 3) if latencies.size else None,
        achieved_rps=round(ok / elapsed, 1),
        send_lag_p99_ms=round(float(np.percentile(lags, 99)) * 1000, 3),
    )


WindowCallback = Callable[[int, LoadResult], None]


async def _window(
    index: int,
    tasks: list[asyncio.Task[tuple[float, float, int]]],
    lags: list[float],
    rate: float,
    start: float,
    on_window: WindowCallback | None,
) -> tuple[list[tuple[float, float, int]], list[float]]:
    """Wait for one window's answers and report them as soon as they are in."""
    results = await asyncio.gather(*tasks)
    if on_window is not None:
        on_window(index, summarize(results, lags, rate, len(tasks) / rate, start))
    return results, lags


async def drive(
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    timeout: float = 10.0,
    window: float | None = None,
    on_window: WindowCallback | None = None,
    latencies_file: Path | None = None,
) -> LoadResult:
    """Send ``rate * seconds`` requests on a fixed schedule, then wait for every answer.

    With ``window``, the schedule is cut into windows of that many seconds and ``on_window`` gets
    each one's figures once its answers are in, while the schedule goes on: a long run shows how the
    latency moves without gaps in the load. Each window keeps only its own requests. With
    ``latencies_file``, every answered request's latency is saved there too (``numpy.save``, ms), so
    that runs can be pooled into one percentile.

    The garbage collector is off while the schedule runs: its pauses are the driver's, and without
    this they reach the measured p99 of a fast server.
    """
    total = max(1, round(rate * seconds))
    per_window = total if window is None else max(1, round(rate * window))
    connector = aiohttp.TCPConnector(limit=0)  # a queued request must not wait for a free connection
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for _ in range(WARMUP_REQUESTS):
            await _post(session, url, body)
        windows: list[asyncio.Task[tuple[list[tuple[float, float, int]], list[float]]]] = []
        batch: list[asyncio.Task[tuple[float, float, int]]] = []
        lags: list[float] = []
        sent = 0
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            while sent < total:
                # Timers are only about a millisecond precise: send everything that is due, then sleep.
                now = time.perf_counter()
                due = min(total, int((now - start) * rate) + 1)
                while sent < due:
                    lags.append(now - (start + sent / rate))
                    batch.append(asyncio.create_task(_post(session, url, body)))
                    sent += 1
                    if len(batch) == per_window or sent == total:
                        first = start + (sent - len(batch)) / rate
                        windows.append(asyncio.create_task(_window(len(windows), batch, lags, rate, first, on_window)))
                        batch, lags = [], []
                await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
            done = await asyncio.gather(*windows)
        finally:
            gc.enable()
    results = [result for window_results, _ in done for result in window_results]
    all_lags = [lag for _, window_lags in done for lag in window_lags]
    if latencies_file is not None:
        with latencies_file.open("wb") as out:
            np.save(out, answered_ms(results))
    return summarize(results, all_lags, rate, seconds, start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True, help="the JSON body every request sends")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request; a late answer is an error")
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="also print one JSON line per window of this many seconds, as each ends ({'window': i, ...})",
    )
    parser.add_argument(
        "--latencies-file",
        type=Path,
        default=None,
        help="also save every answered request's latency in ms here (numpy .npy), to pool several runs",
    )
    args = parser.parse_args(argv)

    def print_window(index: int, result: LoadResult) -> None:
        print(json.dumps({"window": index, "started_s": round(index * args.window, 3), **asdict(result)}), flush=True)

    on_window = print_window if args.window else None
    body = args.body_file.read_bytes()
    result = uvloop.run(
        drive(args.url, body, args.rate, args.seconds, args.timeout, args.window, on_window, args.latencies_file)
    )
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
