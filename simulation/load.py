"""``python -m simulation.load``: a steady open-loop load on the forecasting service, every answer
recorded with the wall-clock time it was sent.

Request ``i`` goes out at ``start + i / rate`` whether or not earlier ones have answered (a slow or
absent server meets the load it would meet, not a client that waits), to ``/v1/forecast`` of the
entities in turn, on loopback only. The load is bounded: a request that has no answer after
``--timeout`` seconds is given up and recorded as unanswered, so at most ``rate * timeout`` requests
are in flight. Each answer is one CSV line ``sent,latency_s,status`` (``sent`` in Unix seconds;
status 0: no answer: refused, reset or timed out), flushed every second, so that the simulation reads
the windows of its faults from the file while the load goes on. SIGTERM ends the schedule; the
requests in flight are still waited for and recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import urlparse

import aiohttp

NO_ANSWER = 0


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, out: TextIO) -> None:
    sent, started = time.time(), time.perf_counter()
    status = NO_ANSWER
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        pass
    out.write(f"{sent:.3f},{time.perf_counter() - started:.4f},{status}\n")


async def run(url: str, entities: list[str], rate: float, timeout: float, out_path: Path) -> int:
    """Send until SIGTERM (or SIGINT); the number of requests sent."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bodies = [json.dumps({"entity_id": entity}).encode() for entity in entities]
    connector = aiohttp.TCPConnector(limit=0)
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    with out_path.open("a", buffering=1 << 16) as out:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            start = time.perf_counter()
            flushed = start
            while not stop.is_set():
                now = time.perf_counter()
                due = int((now - start) * rate) + 1
                while sent < due:
                    task = asyncio.create_task(_one(session, url, bodies[sent % len(bodies)], out))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    sent += 1
                if now - flushed >= 1.0:
                    out.flush()
                    flushed = now
                with_next = start + sent / rate - time.perf_counter()
                if with_next > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=with_next)
            if pending:
                await asyncio.gather(*pending)
        out.flush()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulation.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the service's base URL, on loopback (http://127.0.0.1:PORT)")
    parser.add_argument("--entities", required=True, help="comma-separated entity ids, asked for in turn")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default: 20)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a request is given up (default: 5)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file the answers are appended to")
    args = parser.parse_args(argv)
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the load goes to a service on loopback only")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    entities = [e for e in args.entities.split(",") if e]
    if not entities:
        parser.error("--entities names no entity")
    sent = asyncio.run(run(args.url.rstrip("/") + "/v1/forecast", entities, args.rate, args.timeout, args.out))
    print(json.dumps({"sent": sent}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
