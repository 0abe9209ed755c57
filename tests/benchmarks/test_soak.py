"""The soak's verdict: when a run counts as flat, from its per-window figures alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from benchmarks import soak
from harness import load
from harness.net import free_port


def _windows(p99s: list[float | None], rss: list[float], errors: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "window": i,
            "started_s": 30.0 * i,
            "requests": 6000,
            "errors": errors,
            "p50_ms": None if p99 is None else p99 / 3,
            "p99_ms": p99,
            "achieved_rps": 200.0,
            "send_lag_p99_ms": 0.5,
            "rss_mb": mb,
            "driver_rss_mb": 90.0,
        }
        for i, (p99, mb) in enumerate(zip(p99s, rss, strict=True))
    ]


def _met(summary: dict[str, Any]) -> list[bool]:
    return [c["met"] for c in summary["criteria"]]


def test_a_steady_run_is_flat_and_the_warm_up_window_does_not_count() -> None:
    # The first window is slow and grows memory (warm-up: 380 MB before it, 520 MB at its end); after
    # it, everything holds still.
    p99s = [40.0, 4.0, 4.2, 3.9, 4.1, 4.4, 4.0]
    rss = [520.0, 521.0, 522.0, 523.0, 524.0, 525.0, 525.0]
    summary = soak.summarize(_windows(p99s, rss), rss_start_mb=380.0)
    assert summary["flat"] is True
    assert _met(summary) == [True, True, True]
    assert summary["rss_growth_mb"] == 145.0  # start to end, warm-up included: reported, not judged
    assert summary["rss_after_warmup_mb"] == 520.0
    assert summary["windows_per_third"] == 2
    assert summary["p99_first_third_median_ms"] == pytest.approx(4.1)  # windows 1 and 2
    assert summary["p99_last_third_median_ms"] == pytest.approx(4.2)  # windows 5 and 6
    assert (summary["p99_max_ms"], summary["p99_max_window"]) == (40.0, 0)
    assert (summary["p99_first_window_ms"], summary["p99_last_window_ms"]) == (40.0, 4.0)


def test_memory_that_keeps_growing_is_not_flat() -> None:
    rss = [500.0, 510.0, 520.0, 530.0, 540.0]  # +5.9% after the warm-up window
    summary = soak.summarize(_windows([4.0] * 5, rss), rss_start_mb=480.0)
    assert summary["flat"] is False
    assert _met(summary) == [False, True, True]


def test_a_p99_that_creeps_up_is_not_flat() -> None:
    p99s = [5.0, 4.0, 4.0, 5.0, 6.0, 6.1, 6.2]  # last third 6.15 vs first 4.0: x1.54
    summary = soak.summarize(_windows(p99s, [500.0] * 7), rss_start_mb=500.0)
    assert summary["p99_last_to_first_third"] == pytest.approx(1.538, abs=0.001)
    assert _met(summary) == [True, False, True]


def test_errors_or_a_window_without_answers_are_not_flat() -> None:
    erring = soak.summarize(_windows([4.0] * 4, [500.0] * 4, errors=60), rss_start_mb=500.0)
    assert _met(erring) == [True, True, False]  # 1% of the requests

    silent = soak.summarize(_windows([4.0, 4.0, 4.0, None], [500.0] * 4), rss_start_mb=500.0)
    assert silent["p99_last_third_median_ms"] is None
    assert _met(silent) == [True, False, True]
    assert "# Serving soak" in soak.markdown(_report(silent, 4))


def test_too_few_windows_give_no_verdict() -> None:
    summary = soak.summarize(_windows([4.0, 4.0], [500.0, 501.0]), rss_start_mb=499.0)
    assert summary["flat"] is None
    assert summary["criteria"] == []
    assert "too short to judge" in soak.markdown(_report(summary, 2))


def _report(summary: dict[str, Any], windows: int) -> dict[str, Any]:
    params = {
        "rate_rps": 200.0,
        "seconds": 30.0 * windows,
        "window_seconds": 30.0,
        "workers": 1,
        "entity": "ETTh1",
        "model": "ett_forecaster",
        "version": "1",
        "machine": "x86_64",
        "cpus": 2,
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    return {"parameters": params, "summary": summary, "windows": _windows([4.0] * windows, [500.0] * windows)}


def test_the_driver_reports_each_window_of_one_continuous_schedule() -> None:
    from aiohttp import web

    async def run() -> tuple[load.LoadResult, list[tuple[int, load.LoadResult]]]:
        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        seen: list[tuple[int, load.LoadResult]] = []
        try:
            overall = await load.drive(
                f"http://127.0.0.1:{port}/", b"{}", 100, 0.5, window=0.2, on_window=lambda i, r: seen.append((i, r))
            )
        finally:
            await runner.cleanup()
        return overall, seen

    overall, seen = asyncio.run(run())
    assert [i for i, _ in seen] == [0, 1, 2]
    assert [r.requests for _, r in seen] == [20, 20, 10]  # the last window holds what is left
    assert overall.requests == 50
    assert overall.errors == 0
