"""``python -m simulation.load``: a steady open-loop load on the forecasting service, every answer
recorded with the wall-clock time it was sent.

Request ``i`` goes out at ``start + i / rate`` whether or not earlier ones have answered (a slow or
absent server meets the load it would meet, not a client that waits), to ``/v1/forecast`` of the
entities in turn, on loopback only. The load is bounded: a request that has no answer after
``--timeout`` seconds is given up and recorded as unanswered, so at most ``rate * timeout`` requests
are in flight. Each answer is one CSV line ``sent,latency_s,status`` (``sent`` in Unix seconds;
status 0: no answer: refused, reset or timed out), flushed every second, so that the simulation reads
the windows of its faults from the file while the load goes on. With ``--answered-out`` each 2xx
answer's forecast is written too, one JSON line (``index``, ``entity_id``, ``model_version``,
``feature_event_time``, ``values``): what the forecast table must hold once the service has stopped.
SIGTERM ends the schedule; the requests in flight are still waited for and recorded. The generator
is :func:`harness.load.open_loop`, the one the serving benchmarks use too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import urlparse

from harness.load import Answer, open_loop

FLUSH_SECONDS = 1.0


async def _flush_every(out: TextIO, stop: asyncio.Event) -> None:
    """Flush the answers' file every :data:`FLUSH_SECONDS` until ``stop`` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=FLUSH_SECONDS)
        out.flush()


async def run(
    url: str, entities: list[str], rate: float, timeout: float, out_path: Path, answered_path: Path | None = None
) -> int:
    """Send until SIGTERM (or SIGINT); the number of requests sent."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bodies = [json.dumps({"entity_id": entity}).encode() for entity in entities]
    with contextlib.ExitStack() as files:
        out = files.enter_context(out_path.open("a", buffering=1 << 16))
        answered = files.enter_context(answered_path.open("a", buffering=1 << 16)) if answered_path else None

        def record(answer: Answer) -> None:
            out.write(f"{answer.sent_at:.3f},{answer.taken:.4f},{answer.status}\n")
            if answered is not None and answer.body is not None:
                answered.write(json.dumps(answered_line(answer.index, answer.body)) + "\n")

        flusher = asyncio.create_task(_flush_every(out, stop))
        try:
            sent = await open_loop(url, bodies, rate, record, stop=stop, timeout=timeout, keep_bodies=bool(answered))
        finally:
            stop.set()
            await flusher
    return sent


def answered_line(index: int, body: bytes) -> dict[str, object]:
    """What a 2xx forecast answered, as the forecast table must hold it."""
    forecast = json.loads(body)
    return {
        "index": index,
        "entity_id": forecast["entity_id"],
        "model_version": forecast["model_version"],
        "feature_event_time": forecast["feature_event_time"],
        "values": [step["value"] for step in forecast["forecast"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulation.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the service's base URL, on loopback (http://127.0.0.1:PORT)")
    parser.add_argument("--entities", required=True, help="comma-separated entity ids, asked for in turn")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default: 20)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a request is given up (default: 5)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file the answers are appended to")
    parser.add_argument(
        "--answered-out", type=Path, default=None, help="JSON-lines file each 2xx answer's forecast is appended to"
    )
    args = parser.parse_args(argv)
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the load goes to a service on loopback only")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    entities = [e for e in args.entities.split(",") if e]
    if not entities:
        parser.error("--entities names no entity")
    url = args.url.rstrip("/") + "/v1/forecast"
    sent = asyncio.run(run(url, entities, args.rate, args.timeout, args.out, args.answered_out))
    print(json.dumps({"sent": sent}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
