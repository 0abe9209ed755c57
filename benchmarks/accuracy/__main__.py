"""``python -m benchmarks.accuracy``: the accuracy benchmark (see :mod:`benchmarks.accuracy`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import benchmarks.accuracy
from benchmarks.accuracy.models import run
from benchmarks.accuracy.protocol import BenchmarkConfig
from benchmarks.accuracy.report import check_targets, write_report
from core.progress import logging_beside_progress
from core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=benchmarks.accuracy.__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/benchmarks/ltsf_univariate.yaml"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--models", nargs="*", default=None, help="only these families")
    parser.add_argument(
        "--intervals-only",
        action="store_true",
        help="only the interval rows: their families at their horizon (with those point rows) and the peer",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = BenchmarkConfig.from_yaml(args.config)
    if args.intervals_only and config.intervals is None:
        parser.error(f"{args.config} has no intervals section")
    with logging_beside_progress():
        report = run(config, Settings(), args.models, intervals_only=args.intervals_only)
    verdicts = check_targets(report, config)
    path = write_report(report, verdicts, config, args.out, chart=True)
    print((args.out / "accuracy.md").read_text())
    print(f"wrote {path}" + (f" and {args.out / 'accuracy.png'}" if report.results else ""))
    return 0 if all(v.passed for v in verdicts if v.target) else 1


if __name__ == "__main__":
    sys.exit(main())
