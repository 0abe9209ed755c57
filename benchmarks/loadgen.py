"""``python -m benchmarks.loadgen``: HTTP POST load at a fixed arrival rate; prints one JSON summary.

Request ``i`` is sent at ``start + i / rate`` whether or not earlier ones have answered, so a slow
server meets a growing queue rather than a client that politely waits (no coordinated omission).
``hey -q`` is not used for this: its per-worker rate limit starts every worker's ticker at the same
instant, so it sends bursts of ``-c`` simultaneous requests and measures the burst more than the
rate, and its CSV output leaves out requests that failed. The benchmark runs this module in a
process of its own, so nothing the benchmark imports (Feast, MLflow) shares the event loop. The
generator itself is :func:`harness.load.drive`, the one the simulation's load uses too.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import uvloop

from harness.load import LoadResult, drive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    bodies = parser.add_mutually_exclusive_group(required=True)
    bodies.add_argument("--body-file", type=Path, help="the JSON body every request sends")
    bodies.add_argument("--bodies-file", type=Path, help="JSON bodies, one a line, sent in turn (many entities)")
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
    body = args.body_file.read_bytes() if args.body_file else args.bodies_file.read_bytes().splitlines()
    result = uvloop.run(
        drive(args.url, body, args.rate, args.seconds, args.timeout, args.window, on_window, args.latencies_file)
    )
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
