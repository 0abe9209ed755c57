"""``python -m simulation``: replay consecutive days of a dataset through the daily loop's DAGs.

    python -m simulation --dataset configs/datasets/ett.yaml --start 2017-07-02 --days 30 --out reports
    python -m simulation ... --shift level_scale --shift-day 8     # a regime change of one entity

Writes ``simulation.json`` (``days``: one object per simulated day; ``checks``: named yes/no
computed from the stores; ``summary``; ``drift_loop``: how the drift loop answered the shift, or how
often it fired without one) and ``simulation.md``. Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import PROJECT_ROOT
from harness.servers import exit_on_sigterm
from simulation.faults import STANDARD, kinds_of

if TYPE_CHECKING:
    from tqdm import tqdm

    from simulation.report import Day


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=PROJECT_ROOT / "configs" / "datasets" / "ett.yaml",
        help="dataset config YAML to replay (default: ETT)",
    )
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=None,
        help="first simulated day, YYYY-MM-DD (default: the first day after a whole training window of history)",
    )
    parser.add_argument("--days", type=int, default=30, help="how many days to simulate (default: 30)")
    parser.add_argument(
        "--retrain-trials", type=int, default=0, help="Optuna trials of each retraining in the simulation (default: 0)"
    )
    parser.add_argument(
        "--shift",
        choices=["none", "level", "scale", "level_scale", "daily_cycle"],
        default="none",
        help="inject a regime change into one entity's target: its level up 2 standard deviations, its swings "
        "twice as wide, both, or a new daily cycle of 2 standard deviations (default: none, the control)",
    )
    parser.add_argument(
        "--shift-day", type=int, default=0, help="the simulated day the shift starts on, 0 for the first (default: 0)"
    )
    parser.add_argument("--shift-entity", default=None, help="the entity to shift (default: the first)")
    parser.add_argument(
        "--faults",
        default="none",
        help="faults injected while the loop runs: 'standard' (every kind once: "
        + ", ".join(STANDARD)
        + "), a comma-separated list of kinds, or 'none' (default). Any fault runs the loop on real servers "
        "(redis-server, PostgreSQL, S3 on moto) with the forecasting service under load",
    )
    parser.add_argument(
        "--servers",
        action="store_true",
        help="run on the real servers with the service under load even without faults: the control of a faults run",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the fault schedule: the same seed, the same plan")
    parser.add_argument(
        "--load-rate", type=float, default=20.0, help="requests per second on the service under faults (default: 20)"
    )
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=None,
        help="seconds Airflow waits before a failed task's first retry (the platform's "
        "MLOPS_TASK_RETRY_DELAY_SECONDS; default: the platform's, 30)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=PROJECT_ROOT / ".mlops" / "simulation",
        help="the simulation's own home, emptied first (default: .mlops/simulation)",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports", help="folder of the reports")
    return parser


def _advance(bar: tqdm) -> Callable[[Day], None]:
    """What moves the progress bar on after each simulated day, with the day's MAE beside it."""

    def advance(day: Day) -> None:
        mae = "-" if day.champion_mae is None else f"{day.champion_mae:.3f}"
        naive = "-" if day.naive_mae is None else f"{day.naive_mae:.3f}"
        bar.set_postfix_str(f"{day.day} MAE {mae} (naive {naive}) {day.wall_s:.0f}s")
        bar.update()

    return advance


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.retry_delay is not None and args.retry_delay <= 0:
        parser.error("--retry-delay must be more than 0 seconds")
    try:
        kinds_of(args.faults)
    except ValueError as exc:
        parser.error(str(exc))
    # A terminated simulation stops the servers it started (a SIGTERM's default would leave them running).
    exit_on_sigterm()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from core.progress import progress
    from simulation.replay import simulate
    from simulation.report import markdown

    bar = progress(total=args.days, unit="day", desc="simulated days")
    report = simulate(
        args.home.resolve(),
        args.dataset.resolve(),
        args.start,
        args.days,
        args.retrain_trials,
        _advance(bar),
        shift=args.shift,
        shift_day=args.shift_day,
        shift_entity=args.shift_entity,
        faults=args.faults,
        seed=args.seed,
        load_rate=args.load_rate,
        with_servers=args.servers,
        retry_delay=args.retry_delay,
    )
    bar.close()
    report["command"] = "python -m simulation " + shlex.join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "simulation.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "simulation.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if report["summary"]["all_checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
