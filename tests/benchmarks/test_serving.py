"""The serving benchmark's parts that need no servers: the load driver, child settings, target lines."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from benchmarks.serving import measurement, plan, report
from core.settings import PROJECT_ROOT
from harness import load


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _drive_against_local_server(
    path: str, rate: float, seconds: float, latencies_file: Path | None = None
) -> load.LoadResult:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"ok": False}, status=503)

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/fail", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await load.drive(f"http://127.0.0.1:{port}{path}", b"{}", rate, seconds, latencies_file=latencies_file)
    finally:
        await runner.cleanup()


def test_the_driver_sends_the_scheduled_requests_and_counts_non_2xx_as_errors() -> None:
    rate, n = 100, 50
    result = asyncio.run(_drive_against_local_server("/ok", rate=rate, seconds=0.5))
    assert result.requests == n
    assert result.errors == 0
    # How close to the rate a run gets depends on the machine's load; what the schedule guarantees:
    # request i is sent no earlier than i / rate after the start, so the last answer comes more than
    # (n - 1) / rate after it, and n answers in that time are at most rate * n / (n - 1) per second
    # (plus 0.05 for summarize's rounding to one decimal).
    assert 0 < result.achieved_rps <= rate * n / (n - 1) + 0.05
    assert result.p50_ms is not None
    assert result.p99_ms is not None
    assert result.p50_ms <= result.p99_ms

    failed = asyncio.run(_drive_against_local_server("/fail", rate=100, seconds=0.2))
    assert failed.errors == failed.requests == 20
    assert failed.achieved_rps == 0
    assert failed.p99_ms is not None  # an answer is an answer: its latency counts


def test_requests_without_an_answer_are_errors_without_latency() -> None:
    result = asyncio.run(load.drive(f"http://127.0.0.1:{_free_port()}/", b"{}", rate=50, seconds=0.1))
    assert result.errors == result.requests == 5
    assert result.p50_ms is None


def _row(system: str, rate: int, p99: float, achieved: float = 0.0, errors: int = 0) -> dict[str, Any]:
    return {
        "system": system,
        "rate_rps": rate,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "achieved_rps": achieved or float(rate),
        "errors": errors,
        "requests": rate * 10,
        "seconds": 10.0,
        "workers": 2 if rate > 200 else 1,
    }


def test_target_lines_say_met_or_not_met_with_the_numbers() -> None:
    rows = [
        _row(plan.OURS, 50, 2.0),
        _row(plan.FEAST, 50, 3.0),
        _row(plan.OURS, 200, 6.0),
        _row(plan.FEAST, 200, 5.0),
        _row(plan.OURS, 1000, 8.0, achieved=995.0, errors=50),
    ]
    lines = report.target_lines(rows)
    assert lines[0].startswith("- ours p99 below feast serve's p99 at 50 rps: **met**")
    assert "at 200 rps: **not met** (6.00 ms vs 5.00 ms)" in lines[1]
    assert "<= 5 ms at 200 rps: **not met** (6.00 ms)" in lines[2]
    assert "1,000 rps with 2 workers and under 1% errors: **met**" in lines[3]
    assert "0.50% errors" in lines[3]

    rows[-1] = _row(plan.OURS, 1000, 8.0, achieved=900.0)
    assert "**not met**" in report.target_lines(rows)[3]


def test_ours_is_reported_against_the_floor_of_the_same_run() -> None:
    rows = [_row(plan.FLOOR, rate, 2.0) for rate in plan.RATES] + [
        _row(plan.OURS, 50, 2.5),
        _row(plan.OURS, 200, 2.9),
    ]
    assert report.floor_ratio(rows, 200) == pytest.approx(1.45)
    assert report.floor_ratio(rows, 100) is None  # ours did not run at that rate
    [line] = [line for line in report.target_lines(rows) if "floor" in line]
    assert line == "- ours p99 at most 1.5x the floor's at 200 rps: **met** (1.45x: 2.90 ms vs 2.00 ms)"
    rows[-1] = _row(plan.OURS, 200, 3.2)
    assert "**not met** (1.60x" in next(line for line in report.target_lines(rows) if "floor" in line)
    text = report.markdown(rows, 12.0, "1", "ett_forecaster", "ETTh1")
    assert "| 50 | 2.0 | 2.5 | 1.25x |" in text
    assert "| 200 | 2.0 | 3.2 | 1.60x |" in text


def test_rounds_pool_into_one_row_of_all_their_requests(tmp_path: Path) -> None:
    """The pooled p99 is the percentile of every answered request of every round, not a mean of p99s:
    a round whose p99 is high because of a few slow requests weighs by its requests."""
    rounds = [np.full(100, 2.0), np.concatenate([np.full(98, 2.0), np.full(2, 40.0)]), np.full(100, 3.0)]
    files = []
    for i, latencies in enumerate(rounds):
        files.append(tmp_path / f"round-{i}.npy")
        np.save(files[-1], latencies)
    runs = [{**_row(plan.OURS_LEDGER_ON, 200, float(np.percentile(r, 99))), "round": i} for i, r in enumerate(rounds)]
    pooled = measurement.pooled_row(runs, files)
    everything = np.concatenate(rounds)
    assert pooled["round"] == plan.POOLED
    assert pooled["p99_ms"] == pytest.approx(np.percentile(everything, 99), abs=1e-3)
    assert pooled["p50_ms"] == pytest.approx(2.0)
    assert pooled["requests"] == 3 * 2000
    assert pooled["p99_ms"] < float(np.mean([r["p99_ms"] for r in runs]))  # 2 slow of 300 stay under the 1%


def test_the_ledger_is_decided_on_the_pooled_rows_beside_the_noise_of_two_identical_services() -> None:
    """Only the rows that pool all rounds decide the target; the second ledger-off copy's ratio to the
    first (the measurement's own noise) is printed beside the ledger's."""
    rows = [
        {**_row(system, 200, p99), "round": i}
        for i, (on, off, again) in enumerate([(9.0, 3.0, 3.1), (3.0, 3.0, 2.7), (3.6, 3.0, 3.3)])
        for system, p99 in (
            (plan.OURS_LEDGER_ON, on),
            (plan.OURS_NO_LEDGER, off),
            (plan.OURS_NO_LEDGER_AGAIN, again),
        )
    ]
    rows.append(_row(plan.OURS, 200, 20.0))  # the sequential run of ours is not the ledger's pair
    ledger = (plan.OURS_LEDGER_ON, plan.OURS_NO_LEDGER)
    assert report.paired_ratio(rows, 200, *ledger) is None  # no pooled rows, no verdict
    rows += [
        {**_row(plan.OURS_LEDGER_ON, 200, 3.3), "round": plan.POOLED},
        {**_row(plan.OURS_NO_LEDGER, 200, 3.0), "round": plan.POOLED},
        {**_row(plan.OURS_NO_LEDGER_AGAIN, 200, 3.09), "round": plan.POOLED},
    ]
    assert report.paired_ratio(rows, 200, *ledger) == pytest.approx((1.1, 3.3, 3.0))
    noise = report.paired_ratio(rows, 200, plan.OURS_NO_LEDGER_AGAIN, plan.OURS_NO_LEDGER)
    assert noise == pytest.approx((1.03, 3.09, 3.0))
    assert report.paired_ratio(rows, 100, *ledger) is None
    [line] = [line for line in report.target_lines(rows) if "ledger" in line]
    assert line == (
        "- ours p99 with the forecast ledger within 10% of ours without it at 200 rps: **met** "
        "(1.10x, 3 rounds in turns pooled; p99 3.30 ms vs 3.00 ms; two services with the ledger off: 1.03x)"
    )
    rows[-3]["p99_ms"] = 3.4
    assert "**not met** (1.13x" in next(line for line in report.target_lines(rows) if "ledger" in line)
    assert "(all rounds pooled) | 1 | 200 |" in report.markdown(rows, 12.0, "1", "ett_forecaster", "ETTh1")


def test_the_bands_are_decided_against_the_same_model_point_only_in_turns() -> None:
    rows = [
        {**_row(plan.OURS_BANDS, 200, 3.2), "round": plan.POOLED},
        {**_row(plan.OURS_POINT_ONLY, 200, 3.0), "round": plan.POOLED},
        {**_row(plan.OURS_POINT_ONLY_AGAIN, 200, 2.94), "round": plan.POOLED},
        *[{**_row(plan.OURS_BANDS, 200, 3.0), "round": i} for i in range(4)],
    ]
    [line] = [line for line in report.target_lines(rows) if "bands" in line]
    assert line == (
        "- ours p99 with 80% and 95% bands within 10% of the same model point-only at 200 rps: **met** "
        "(1.07x, 4 rounds in turns pooled; p99 3.20 ms vs 3.00 ms; two point-only services: 0.98x)"
    )
    rows[0]["p99_ms"] = 3.5
    assert "**not met** (1.17x" in next(line for line in report.target_lines(rows) if "bands" in line)
    assert not [line for line in report.target_lines(rows) if "ledger" in line]  # that pair did not run


def test_the_driver_saves_the_latency_of_every_answered_request(tmp_path: Path) -> None:
    """What the pooled rows are made of: one latency per request that got an answer, as the run's own
    percentiles were computed from."""
    saved = tmp_path / "latencies.npy"
    result = asyncio.run(_drive_against_local_server("/fail", rate=100, seconds=0.3, latencies_file=saved))
    latencies = np.load(saved)
    assert latencies.size == result.requests == 30  # a 503 is an answer
    assert float(np.percentile(latencies, 99)) == pytest.approx(result.p99_ms, abs=1e-3)
    refused = asyncio.run(
        load.drive(f"http://127.0.0.1:{_free_port()}/", b"{}", rate=50, seconds=0.1, latencies_file=saved)
    )
    assert refused.errors == 5
    assert np.load(saved).size == 0  # no answer, no latency


@pytest.mark.integration
def test_the_floor_reads_the_features_once_per_request_and_answers_its_body(redis_server: int, tmp_path: Path) -> None:
    """The floor does the service's Redis read for every request (a count of HMGETs proves it) and answers
    the fixed body; a key without features stops it at startup."""
    import subprocess
    import sys

    import redis
    import requests

    from benchmarks import floor
    from tests.utils.servers import server_process

    store = redis.Redis(port=redis_server, password="test-secret")
    store.hset(b"entity-key", mapping={b"f1": b"1", b"_ts:view": b"stamp"})
    body = b'{"forecast": [1.0, 2.0]}'
    config = floor.write_config(
        tmp_path / "floor.json", "127.0.0.1", redis_server, b"entity-key", [b"f1", "_ts:view"], body
    )
    env = {"PATH": "/usr/bin:/bin", floor.CONFIG_ENV: str(config), floor.PASSWORD_ENV: "test-secret"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    port = _free_port()
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.floor:app", "--port", str(port), "--no-access-log"]
    before = store.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)
    with server_process(argv, port, timeout=60, env=env, cwd=tmp_path):
        for _ in range(3):
            answer = requests.post(f"http://127.0.0.1:{port}/v1/forecast", json={"entity_id": "ETTh1"}, timeout=10)
            assert (answer.status_code, answer.content) == (200, body)
    assert store.info("commandstats")["cmdstat_hmget"]["calls"] - before == 1 + 3  # startup check + 3 requests

    floor.write_config(config, "127.0.0.1", redis_server, b"no-such-key", [b"f1", "_ts:view"], body)
    started = subprocess.run(
        [*argv[:-3], "--port", str(_free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "holds no features" in started.stderr
