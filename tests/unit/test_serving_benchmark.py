"""The serving benchmark's parts that need no servers: the load driver, child settings, target lines."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from configs.settings import Settings
from model_serving import benchmark, loadgen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _drive_against_local_server(path: str, rate: float, seconds: float) -> loadgen.LoadResult:
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
        return await loadgen.drive(f"http://127.0.0.1:{port}{path}", b"{}", rate, seconds)
    finally:
        await runner.cleanup()


def test_the_driver_sends_the_scheduled_requests_and_counts_non_2xx_as_errors() -> None:
    result = asyncio.run(_drive_against_local_server("/ok", rate=100, seconds=0.5))
    assert result.requests == 50
    assert result.errors == 0
    assert result.achieved_rps == pytest.approx(100, rel=0.2)
    assert result.p50_ms is not None
    assert result.p99_ms is not None
    assert result.p50_ms <= result.p99_ms

    failed = asyncio.run(_drive_against_local_server("/fail", rate=100, seconds=0.2))
    assert failed.errors == failed.requests == 20
    assert failed.achieved_rps == 0
    assert failed.p99_ms is not None  # an answer is an answer: its latency counts


def test_requests_without_an_answer_are_errors_without_latency() -> None:
    result = asyncio.run(loadgen.drive(f"http://127.0.0.1:{_free_port()}/", b"{}", rate=50, seconds=0.1))
    assert result.errors == result.requests == 5
    assert result.p50_ms is None


def test_child_processes_see_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = benchmark.bench_settings(tmp_path / "home", benchmark.PROJECT_ROOT / "configs/datasets/ett.yaml", 6390)
    env = benchmark.settings_env(settings, serving_port=9999, serving_workers=2)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings(_env_file=None)  # type: ignore[call-arg]
    assert child.model_dump() == {**settings.model_dump(), "serving_port": 9999, "serving_workers": 2}
    assert child.redis_connection_string() == settings.redis_connection_string()


def _row(system: str, rate: int, p99: float, achieved: float = 0.0, errors: int = 0) -> dict[str, Any]:
    return {
        "system": system,
        "rate_rps": rate,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "achieved_rps": achieved or float(rate),
        "errors": errors,
        "requests": rate * 10,
        "workers": 2 if rate > 200 else 1,
    }


def test_target_lines_say_met_or_not_met_with_the_numbers() -> None:
    rows = [
        _row(benchmark.OURS, 50, 2.0),
        _row(benchmark.FEAST, 50, 3.0),
        _row(benchmark.OURS, 200, 6.0),
        _row(benchmark.FEAST, 200, 5.0),
        _row(benchmark.OURS, 1000, 8.0, achieved=995.0, errors=50),
    ]
    lines = benchmark.target_lines(rows)
    assert lines[0].startswith("- ours p99 below feast serve's p99 at 50 rps: **met**")
    assert "at 200 rps: **not met** (6.00 ms vs 5.00 ms)" in lines[1]
    assert "<= 5 ms at 200 rps: **not met** (6.00 ms)" in lines[2]
    assert "1,000 rps with 2 workers and under 1% errors: **met**" in lines[3]
    assert "0.50% errors" in lines[3]

    rows[-1] = _row(benchmark.OURS, 1000, 8.0, achieved=900.0)
    assert "**not met**" in benchmark.target_lines(rows)[3]
