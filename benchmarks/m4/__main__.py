"""``python -m benchmarks.m4``: M4 Hourly and Weekly, the baselines and peers scored by M4's rules."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchmarks.m4
from benchmarks.m4 import data, metrics, peers, platform, report

log = logging.getLogger("benchmarks.m4")
# The rows a run can ask for: the peers and the platform's own families.
RUNNERS: dict[str, Callable[[data.M4Series, data.Frequency, int], peers.Forecasts]] = {
    **peers.RUNNERS,
    **{
        row: functools.partial(platform.platform_run, family)
        for row, family in zip(platform.ROWS, platform.FAMILIES, strict=True)
    },
}


def run(frequency: str, models: list[str], limit: int | None, jobs: int = -1) -> tuple[list[dict[str, Any]], int]:
    """Every row of one frequency: Naive2 first (OWA's reference), then the other baselines and peers."""
    series = data.load(frequency)
    if limit is not None:
        series = data.M4Series(series.ids[:limit], series.train[:limit], series.test[:limit])
    spec = data.FREQUENCIES[frequency]
    forecasts = peers.baselines(series, spec)
    for name in models:
        log.info("%s: %s on %d series", frequency, name, len(series.ids))
        forecasts.append(RUNNERS[name](series, spec, jobs))
    naive2 = next(f for f in forecasts if f.model == "Naive2")
    reference = metrics.score(series.train, series.test, naive2.point, spec.seasonal_period)
    rows = []
    for forecast in forecasts:
        scores = metrics.score(
            series.train, series.test, forecast.point, spec.seasonal_period, reference, forecast.interval
        )
        timing = {"fit_s": round(forecast.fit_s, 2), "predict_s": round(forecast.predict_s, 2)}
        rows.append({"frequency": frequency, "model": forecast.model, **scores.__dict__, **timing})
        log.info("%s %s: %s", frequency, forecast.model, scores.rounded())
    return rows, len(series.ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.m4", description=benchmarks.m4.__doc__)
    parser.add_argument("--frequencies", nargs="+", choices=sorted(data.FREQUENCIES), default=["hourly", "weekly"])
    parser.add_argument(
        "--models",
        nargs="*",
        choices=list(RUNNERS),
        default=[*peers.RUNNERS, "platform_selection"],
        help="the peers and platform families to run (default: the peers and the platform's selection; the "
        "platform's single families, platform_auto_ets and the like, on request)",
    )
    parser.add_argument("--series", type=int, default=None, help="only the first N series of each frequency")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument(
        "--jobs", type=int, default=-1, help="processes statsforecast fits in and LightGBM's threads (-1: every core)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for frequency in args.frequencies:
        found, counts[frequency] = run(frequency, args.models, args.series, args.jobs)
        rows += found
    paths = report.write(rows, counts, args.out)
    print(paths[1].read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
