"""The open-loop HTTP load generator of the benchmarks and the simulation.

Request ``i`` is sent at ``start + i / rate`` whether or not earlier ones have answered, so a slow or
absent server meets a growing queue rather than a client that politely waits (no coordinated
omission). Timers are only about a millisecond precise, so the driver wakes, sends everything that is
due, then sleeps until the next slot; how late each request left against its slot is kept (a large
lag means the driver itself was starved of CPU). Every request is a POST of a JSON body (the bodies
taken in turn), bounded by a timeout: one without an answer by then is given up and recorded with
status :data:`NO_ANSWER`, so at most ``rate * timeout`` requests are in flight.

:func:`open_loop` is the schedule itself: a fixed number of requests, or until a stop event is set,
each :class:`Answer` handed to a callback as it comes in; the requests still in flight when the
schedule ends are waited for. :func:`drive` is the measured run the benchmarks make of it: unmeasured
warm-up requests first, the garbage collector paused, the answers summarized into a
:class:`LoadResult` (errors are non-2xx answers and requests without one; latency percentiles are
over the requests that got an answer, whatever its status), per window of the schedule as each
window's answers are in, and overall. The simulation uses :func:`open_loop` directly, writing each
answer to a file while the load goes on. ``hey -q`` is not used for either: its per-worker rate limit
starts every worker's ticker at the same instant, so it sends bursts of ``-c`` simultaneous requests,
and its CSV output leaves out requests that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

NO_ANSWER = 0  # status recorded for a request that got no HTTP answer (refused, reset, timed out)
WARMUP_REQUESTS = 50  # sent one by one, unmeasured: the first connection and code paths are slow
_JSON = {"Content-Type": "application/json"}
_NO_ANSWER_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request of the schedule and what came of it (``due``, ``finished``: ``time.perf_counter``
    seconds; ``sent_at``: Unix seconds, to line answers up with events outside the driver)."""

    index: int  # its place in the schedule, from 0
    sent_at: float
    due: float  # when the schedule meant it to leave: start + index / rate
    lag: float  # how late it left against ``due``
    taken: float  # seconds from sending to reading the body, or to giving up
    finished: float
    status: int  # the HTTP status, NO_ANSWER without one
    body: bytes | None = None  # a 2xx answer's body, where the schedule keeps them (keep_bodies)


AnswerCallback = Callable[[Answer], None]


async def _request(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    slot: tuple[int, float, float],
    on_answer: AnswerCallback,
    keep_body: bool = False,
) -> None:
    """One POST; ``slot``: (index, due, lag) in the schedule."""
    sent_at, started = time.time(), time.perf_counter()
    status, answer = NO_ANSWER, None
    try:
        async with session.post(url, data=body, headers=_JSON) as response:
            answer = await response.read()
            status = response.status
    except _NO_ANSWER_ERRORS:
        pass
    finished = time.perf_counter()
    index, due, lag = slot
    kept = answer if keep_body and 200 <= status < 300 else None
    on_answer(Answer(index, sent_at, due, lag, finished - started, finished, status, kept))


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    """Sleep ``seconds`` (at least yield to the loop), or less when ``stop`` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(max(0.0, seconds))
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


async def open_loop(
    url: str,
    bodies: Sequence[bytes],
    rate: float,
    on_answer: AnswerCallback,
    *,
    total: int | None = None,
    stop: asyncio.Event | None = None,
    timeout: float = 10.0,
    warmup: int = 0,
    pause_gc: bool = False,
    keep_bodies: bool = False,
) -> int:
    """POST ``bodies`` in turn to ``url`` at ``rate`` per second on a fixed schedule; the number sent.

    The schedule ends after ``total`` requests, or once ``stop`` is set (one of them is needed); then
    the requests in flight are waited for, so ``on_answer`` has seen every one when this returns.
    ``warmup`` requests go first, one by one and unrecorded. With ``pause_gc`` the garbage collector
    is off from the schedule's start to its last answer: its pauses are the driver's, and without this
    they reach the measured p99 of a fast server. With ``keep_bodies`` each 2xx answer carries its body
    (to check what was answered against what was stored; the benchmarks keep none).
    """
    if rate <= 0 or not bodies:
        raise ValueError(f"a load needs a positive rate and at least one body (rate {rate}, {len(bodies)} bodies)")
    if total is None and stop is None:
        raise ValueError("a schedule without a total of requests needs a stop event")
    connector = aiohttp.TCPConnector(limit=0)  # a queued request must not wait for a free connection
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for i in range(warmup):
            await _request(session, url, bodies[i % len(bodies)], (i, 0.0, 0.0), lambda _: None)
        if pause_gc:
            gc.collect()
            gc.disable()
        try:
            start = time.perf_counter()
            while (total is None or sent < total) and not (stop is not None and stop.is_set()):
                now = time.perf_counter()
                due = int((now - start) * rate) + 1
                if total is not None:
                    due = min(total, due)
                while sent < due:
                    slot = start + sent / rate
                    body = bodies[sent % len(bodies)]
                    task = asyncio.create_task(
                        _request(session, url, body, (sent, slot, now - slot), on_answer, keep_bodies)
                    )
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    sent += 1
                await _pause(start + sent / rate - time.perf_counter(), stop)
            if pending:
                await asyncio.gather(*pending)
        finally:
            if pause_gc:
                gc.enable()
    return sent


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


def answered_ms(answers: Sequence[Answer]) -> np.ndarray:
    """The latencies, in milliseconds, of the requests that got an answer, whatever its status."""
    return np.array([a.taken for a in answers if a.status != NO_ANSWER], dtype=float) * 1000


def summarize(answers: Sequence[Answer], rate: float, seconds: float, start: float) -> LoadResult:
    """The figures of ``answers`` (one per request) whose part of the schedule began at ``start``."""
    latencies = answered_ms(answers)
    ok = sum(200 <= a.status < 300 for a in answers)
    elapsed = max(a.finished for a in answers) - start
    return LoadResult(
        rate_rps=rate,
        seconds=seconds,
        requests=len(answers),
        errors=len(answers) - ok,
        p50_ms=round(float(np.percentile(latencies, 50)), 3) if latencies.size else None,
        p99_ms=round(float(np.percentile(latencies, 99)), 3) if latencies.size else None,
        achieved_rps=round(ok / elapsed, 1),
        send_lag_p99_ms=round(float(np.percentile([a.lag for a in answers], 99)) * 1000, 3),
    )


WindowCallback = Callable[[int, LoadResult], None]


class _Windows:
    """The answers of a fixed-length schedule, cut into windows of ``size`` requests (the last one
    holds what is left); each complete window is summarized and handed to ``on_window``."""

    def __init__(self, total: int, size: int, rate: float, on_window: WindowCallback | None):
        self.total, self.size, self.rate, self.on_window = total, size, rate, on_window
        self.answers: list[Answer] = []
        self._open: dict[int, list[Answer]] = {}

    def add(self, answer: Answer) -> None:
        self.answers.append(answer)
        index = answer.index // self.size
        window = self._open.setdefault(index, [])
        window.append(answer)
        size = min(self.size, self.total - index * self.size)
        if len(window) == size:
            del self._open[index]
            if self.on_window is not None:
                window.sort(key=lambda a: a.index)
                self.on_window(index, summarize(window, self.rate, size / self.rate, window[0].due))


async def drive(
    url: str,
    body: bytes | Sequence[bytes],
    rate: float,
    seconds: float,
    timeout: float = 10.0,
    window: float | None = None,
    on_window: WindowCallback | None = None,
    latencies_file: Path | None = None,
    warmup: int = WARMUP_REQUESTS,
) -> LoadResult:
    """Send ``rate * seconds`` requests on a fixed schedule, after ``warmup`` unmeasured ones, then
    wait for every answer; the run's figures. ``body``: every request's, or several sent in turn
    (requests for many entities).

    With ``window``, the schedule is cut into windows of that many seconds and ``on_window`` gets each
    one's figures once its answers are in, while the schedule goes on: a long run shows how the
    latency moves without gaps in the load. With ``latencies_file``, every answered request's latency
    is saved there too (``numpy.save``, ms, in schedule order), so that runs can be pooled into one
    percentile.
    """
    total = max(1, round(rate * seconds))
    windows = _Windows(total, total if window is None else max(1, round(rate * window)), rate, on_window)
    bodies = [body] if isinstance(body, bytes) else list(body)
    await open_loop(url, bodies, rate, windows.add, total=total, timeout=timeout, warmup=warmup, pause_gc=True)
    answers = sorted(windows.answers, key=lambda a: a.index)
    if latencies_file is not None:
        with latencies_file.open("wb") as out:
            np.save(out, answered_ms(answers))
    return summarize(answers, rate, seconds, answers[0].due)
