"""``python -m benchmarks.serving``: the serving latency benchmark (see :mod:`benchmarks.serving`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

import benchmarks.serving
from benchmarks.serving import measurement
from benchmarks.serving.plan import (
    DEFAULT_HOME,
    ENTITY,
    HIGH_RATE_SECONDS,
    HIGH_RATE_WORKERS,
    HIGH_RATES,
    LEDGER_ROUNDS,
    LOGICAL_DATE,
    OURS_P99_TARGET_RATE,
    RATES,
    SYSTEMS,
)
from benchmarks.serving.report import markdown, read_paths_section
from benchmarks.serving.servers import (
    bench_stack,
    point_only_champion,
    write_floor_config,
)
from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=benchmarks.serving.__doc__)
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="benchmark state; kept between runs")
    parser.add_argument("--dataset", type=Path, default=PROJECT_ROOT / "configs" / "datasets" / "ett.yaml")
    parser.add_argument("--logical-date", type=date.fromisoformat, default=LOGICAL_DATE)
    parser.add_argument("--entity", default=ENTITY)
    parser.add_argument("--seconds", type=float, default=12.0, help="load per rate")
    parser.add_argument(
        "--ledger-rounds",
        type=int,
        default=LEDGER_ROUNDS,
        help="rounds in turns of each paired comparison (ledger on/off, bands/point-only)",
    )
    parser.add_argument(
        "--retrain", action="store_true", help="train and promote a new champion even if the home has one"
    )
    parser.add_argument(
        "--family",
        default="xgboost",
        help="the champion's model family (e.g. selection: the dataset's candidates, chosen per series); a "
        "champion of another family in the home is replaced",
    )
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=SYSTEMS,
        default=list(SYSTEMS),
        help="what to load (default: all); the report covers only these",
    )
    return parser


def _load_systems(
    args: argparse.Namespace, settings: Settings, dataset: DatasetConfig, version: str, logs: Path
) -> list[dict[str, Any]]:
    """The rows of every system ``--systems`` names, in :data:`benchmarks.serving.plan.SYSTEMS`' order."""
    systems, seconds, entity = args.systems, args.seconds, args.entity
    rows: list[dict[str, Any]] = []
    if "floor" in systems:
        config = write_floor_config(settings, dataset, version, entity, logs)
        rows += measurement.floor(settings, config, RATES, seconds, entity, logs)
    if "ours" in systems:
        rows += measurement.ours(settings, 1, RATES, seconds, entity, logs)
    if "ledger" in systems:  # the same service recording every forecast, and recording none
        rows += measurement.ledger_cost(settings, OURS_P99_TARGET_RATE, seconds, args.ledger_rounds, entity, logs)
    if "intervals" in systems:  # the champion with its bands, and the same model point-only
        point_only = point_only_champion(settings, dataset, version)
        rate, rounds = OURS_P99_TARGET_RATE, args.ledger_rounds
        rows += measurement.bands_cost(settings, point_only, rate, seconds, rounds, entity, logs)
    if "feast" in systems:
        rows += measurement.feast_serve(settings, dataset, RATES, seconds, entity, logs)
    if "mlflow" in systems:
        rows += measurement.mlflow_serve(settings, dataset, version, RATES, seconds, entity, logs)
    if "ours-workers" in systems:
        high_seconds = max(seconds, HIGH_RATE_SECONDS)
        rows += measurement.ours(settings, HIGH_RATE_WORKERS, HIGH_RATES, high_seconds, entity, logs)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with bench_stack(args.home, args.dataset, args.logical_date, args.retrain, args.family) as bench:
        settings, dataset, version, logs = bench.settings, bench.dataset, bench.version, bench.logs
        reads = measurement.compare_read_paths(settings, dataset, args.entity) if "reads" in args.systems else []
        rows = _load_systems(args, settings, dataset, version, logs)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(rows, indent=2) + "\n")
    chart = None
    if any(r["p99_ms"] is not None for r in rows):  # "--systems reads" alone loads no server
        from benchmarks.charts import serving_chart

        chart = serving_chart(rows, args.out / "serving.png").name
    (args.out / "serving_reads.json").write_text(json.dumps(reads, indent=2) + "\n")
    report = markdown(rows, args.seconds, version, settings.model_name(dataset.name), args.entity, chart, args.family)
    report += read_paths_section(reads)
    (args.out / "serving.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
