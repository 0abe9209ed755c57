"""The open-loop load generator: the schedule it keeps, what it records, how it counts errors.

No assertion here is on a duration: the schedule's slots are computed, not measured, and the
open-loop test holds every answer back until all requests have arrived, which a generator that
waited for answers would never do.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from harness.load import NO_ANSWER, Answer, LoadResult, drive, open_loop, summarize
from harness.net import free_port

Handler = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def test_bodies_go_in_turn_on_the_schedule_and_errors_are_counted() -> None:
    """Entity ``a`` is answered, ``b`` refused with a 503, ``c`` never answered within the timeout:
    with the bodies in turn, every third request fares the same, and both kinds of failure count."""
    received: Counter[bytes] = Counter()
    release: asyncio.Event | None = None

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        received[body] += 1
        if body == b"c":
            assert release is not None
            await release.wait()  # after the client has given up: the run is over by then
        return web.Response(status=200 if body == b"a" else 503)

    async def run() -> tuple[int, list[Answer]]:
        nonlocal release
        release = asyncio.Event()
        answers: list[Answer] = []
        async with _server(handler) as url:
            sent = await open_loop(url, [b"a", b"b", b"c"], 100.0, answers.append, total=9, timeout=0.5)
            release.set()
        return sent, sorted(answers, key=lambda a: a.index)

    sent, answers = asyncio.run(run())
    assert sent == 9
    assert [a.index for a in answers] == list(range(9))
    assert received == {b"a": 3, b"b": 3, b"c": 3}
    assert [a.status for a in answers] == [200, 503, NO_ANSWER] * 3
    assert [a.due - answers[0].due for a in answers] == pytest.approx([i / 100.0 for i in range(9)])
    result = summarize(answers, 100.0, 0.09, answers[0].due)
    assert (result.requests, result.errors) == (9, 6)
    assert result.p50_ms is not None, "a 503 is an answer: its latency counts, a timeout's does not"


def test_requests_go_out_whether_or_not_earlier_ones_have_answered() -> None:
    """The server answers nobody until all five requests are in: only an open loop gets there."""
    count = 5
    arrived: list[None] = []
    everyone: asyncio.Event | None = None

    async def handler(request: web.Request) -> web.Response:
        assert everyone is not None
        arrived.append(None)
        if len(arrived) == count:
            everyone.set()
        try:
            await asyncio.wait_for(everyone.wait(), timeout=20)
        except TimeoutError:
            return web.Response(status=504)
        return web.Response(status=200)

    async def run() -> list[Answer]:
        nonlocal everyone
        everyone = asyncio.Event()
        answers: list[Answer] = []
        async with _server(handler) as url:
            await open_loop(url, [b"{}"], 50.0, answers.append, total=count, timeout=30)
        return answers

    answers = asyncio.run(run())
    assert len(arrived) == count
    assert [a.status for a in answers] == [200] * count


def test_a_stopped_schedule_still_records_every_request_it_sent() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def run() -> tuple[int, list[Answer]]:
        stop = asyncio.Event()
        answers: list[Answer] = []

        def record(answer: Answer) -> None:
            answers.append(answer)
            if len(answers) == 3:
                stop.set()

        async with _server(handler) as url:
            sent = await open_loop(url, [b"{}"], 200.0, record, stop=stop)
        return sent, answers

    sent, answers = asyncio.run(run())
    assert sent >= 3
    assert sorted(a.index for a in answers) == list(range(sent)), "the requests in flight were waited for"


def test_a_measured_run_leaves_its_warm_up_out() -> None:
    seen: list[None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(None)
        return web.Response(status=200)

    async def run() -> LoadResult:
        async with _server(handler) as url:
            return await drive(url, b"{}", 100.0, 0.1, warmup=5)

    result = asyncio.run(run())
    assert len(seen) == 5 + 10
    assert result.requests == 10
    assert result.errors == 0


def test_a_run_for_many_entities_sends_their_bodies_in_turn() -> None:
    seen: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(status=200)

    bodies = [b'{"entity_id": "s0"}', b'{"entity_id": "s1"}', b'{"entity_id": "s2"}']

    async def run() -> LoadResult:
        async with _server(handler) as url:
            return await drive(url, bodies, 100.0, 0.1, warmup=0)

    assert asyncio.run(run()).requests == 10
    assert Counter(seen) == {bodies[0]: 4, bodies[1]: 3, bodies[2]: 3}


def test_a_schedule_needs_an_end() -> None:
    with pytest.raises(ValueError, match="needs a stop event"):
        asyncio.run(open_loop("http://127.0.0.1:1/", [b"{}"], 10.0, lambda _: None))
