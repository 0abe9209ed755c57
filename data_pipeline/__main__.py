"""``python -m data_pipeline {ingest,validate} --dataset CONFIG --logical-date YYYY-MM-DD``."""

from __future__ import annotations

import argparse
import sys

from core.cli import add_common_args, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_pipeline", description=__doc__)
    parser.add_argument("command", choices=["ingest", "validate"])
    add_common_args(parser)
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args, check_sources=args.command == "ingest")
    if args.command == "ingest":
        from data_pipeline.ingest import ingest

        print(f"landed: {ingest(dataset, logical_date, settings).path}")
        return 0
    from data_pipeline.validation import DataValidationError, validate

    try:
        outcome = validate(dataset, logical_date, settings)
    except DataValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"validation passed: {outcome.evaluated} expectations")
    print(f"  result:    {outcome.result_path}")
    print(f"  data docs: {outcome.data_docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
