"""Many realistic series on demand, written as a dataset of the platform: a long table and its YAML.

    python -m harness.series --series 10000 --frequency daily --out .mlops/scale/daily_10000

What M4's series look like (Makridakis et al., 2020): levels from a few units to hundreds of
thousands, trends that bend, one or two seasons (a day's hours and a week's days for hourly data,
the week and the year for daily data), noise that persists, level shifts; and what retail and
meter data add: intermittent demand (mostly zeros, counts now and then), and series that start
midway (new products, new meters) with short histories. Each series draws its own shape, so a
model tuned to one kind meets the others.

Each series is drawn from a random generator of its own (seeded by the run's seed and the series'
number), so a series is the same whatever the number of series written with it or the size of
the partitions it is written in: 1,000 series are the first 1,000 of 100,000. The table is
written one partition of series at a time (a Parquet row group each, a CSV appended to), so
memory holds one partition, whatever the number of series. The YAML follows the written table:
an hourly or daily long-layout source, the seasons the series were drawn with, a horizon of two
seasons' worth (48 hours, 14 days), the selection of statistical candidates per series.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml

Frequency = Literal["daily", "hourly"]
# Shares of the series of each kind.
INTERMITTENT_SHARE = 0.1  # counts, mostly zeros
LATE_START_SHARE = 0.1  # start midway through the history
SHIFT_SHARE = 0.2  # one level shift
END = date(2024, 12, 31)


@dataclass(frozen=True)
class Spec:
    """A frequency's grid and seasons, and what its dataset's YAML takes."""

    step: str  # pandas frequency
    iso: str  # the YAML's frequency
    seasons: tuple[float, ...]  # in steps; the first is the dataset's seasonal period
    horizon: int
    lags: tuple[int, ...]
    windows: tuple[int, ...]
    calendar: tuple[str, ...]


SPECS: dict[str, Spec] = {
    # The lags: a whole season (seasonal naive forecasts from it), the same time a season and two back.
    "daily": Spec("D", "P1D", (7, 365.25), 14, (*range(7), 7, 13, 14, 28), (7, 28), ("day_of_week", "month")),
    "hourly": Spec("h", "PT1H", (24, 168), 48, (*range(24), 24, 47, 48, 167, 168), (24, 168), ("hour", "day_of_week")),
}


def one_series(index: int, periods: int, spec: Spec, seed: int) -> np.ndarray:
    """Series ``index``'s ``periods`` values (NaN before a late start): its own generator, its own shape."""
    from scipy.signal import lfilter

    rng = np.random.default_rng([seed, index])
    t = np.arange(periods, dtype=np.float64)
    scale = 10.0 ** rng.uniform(0.5, 5.0)
    if rng.random() < INTERMITTENT_SHARE:  # demand now and then: Bernoulli arrivals of Poisson sizes
        rate = rng.uniform(0.05, 0.4)
        sizes = rng.poisson(rng.uniform(1.0, 8.0), periods) + 1
        values = np.where(rng.random(periods) < rate, sizes, 0).astype(np.float64)
    else:
        # A trend that may bend (damped), seasons of random strength and phase, AR(1) noise.
        slope = rng.normal(0.0, 0.5) / periods
        damping = rng.uniform(0.0, 3.0) / periods
        trend = slope * (1.0 - np.exp(-damping * t)) / damping if damping > 0 else slope * t
        level = 1.0 + trend
        for season in spec.seasons:
            if rng.random() < 0.7:
                harmonics = rng.normal(0.0, 1.0, (2, 2)) * rng.uniform(0.02, 0.25)
                for k, (a, b) in enumerate(harmonics, start=1):
                    level = level + a * np.sin(2 * np.pi * k * t / season) + b * np.cos(2 * np.pi * k * t / season)
        phi, sigma = rng.uniform(0.0, 0.9), rng.uniform(0.01, 0.1)
        shocks = rng.normal(0.0, sigma * math.sqrt(1 - phi**2), periods)
        shocks[0] = rng.normal(0.0, sigma)  # the stationary start
        noise = lfilter([1.0], [1.0, -phi], shocks)
        level = level + noise
        if rng.random() < SHIFT_SHARE:
            at = rng.integers(periods // 4, periods)
            level[at:] += rng.normal(0.0, 0.3)
        values = np.maximum(scale * level, 0.0)
    if rng.random() < LATE_START_SHARE:  # a series that starts midway, some with a short history
        values[: rng.integers(periods // 3, periods - 4 * int(spec.seasons[0]))] = np.nan
    return values


def grid(frequency: Frequency, days: int, end: date = END) -> pd.DatetimeIndex:
    """The ``days`` days' time grid up to the last step of ``end`` (UTC)."""
    spec = SPECS[frequency]
    periods = days * (24 if frequency == "hourly" else 1)
    last = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1) - pd.tseries.frequencies.to_offset(spec.step)
    return pd.date_range(end=last, periods=periods, freq=spec.step)


def frames(
    series: int, frequency: Frequency = "daily", days: int = 730, seed: int = 0, end: date = END, partition: int = 1000
) -> Iterator[pd.DataFrame]:
    """The long rows (``series``, ``time``, ``value``) of ``series`` series over ``days`` days up to
    ``end``, one frame per ``partition`` series; a late series has no rows before its start."""
    spec, stamps = SPECS[frequency], grid(frequency, days, end)
    for first in range(0, series, partition):
        names, times, values = [], [], []
        for index in range(first, min(first + partition, series)):
            drawn = one_series(index, len(stamps), spec, seed)
            known = ~np.isnan(drawn)
            names.append(np.full(int(known.sum()), f"s{index}", dtype=object))
            times.append(stamps[known])
            values.append(drawn[known])
        yield pd.DataFrame(
            {"series": np.concatenate(names), "time": times[0].append(times[1:]), "value": np.concatenate(values)}
        )


def config(name: str, frequency: Frequency, source: str, fmt: str, series: int, end: date = END) -> dict[str, object]:
    """The dataset's YAML for a table of ``series`` series written to ``source`` (relative to the YAML)."""
    spec = SPECS[frequency]
    season = int(spec.seasons[0])
    day = frequency == "daily"
    holdout_days = math.ceil(2 * spec.horizon / (1 if day else 24))  # two horizons' worth
    return {
        "name": name,
        "description": f"{series} generated {frequency} series (harness.series): trends, seasons, level "
        "shifts, intermittent counts and late starts.",
        "entity_column": "series",
        "timestamp_column": "time",
        "frequency": spec.iso,
        "target": "value",
        "features": [],
        "horizon": spec.horizon,
        "seasonal_period": season,
        "seasonal_periods": [round(s) for s in spec.seasons],
        "source": {"layout": "long", "format": fmt, "uri": source},
        "quality": {
            "value_ranges": {"value": [0.0, 1.0e8]},
            "max_gap": spec.iso,
            "min_rows": 1,
            "max_rows": 1_000_000_000,
            "max_age": "P2D" if day else "PT2H",
        },
        "feature_engineering": {
            "target_lags": list(spec.lags),
            "covariate_lags": [],
            "rolling_windows": list(spec.windows),
            "calendar": list(spec.calendar),
            "ttl": "P3D" if day else "PT3H",
        },
        "promotion": {
            "holdout": f"P{holdout_days}D",
            "drift_window": "P56D" if day else "P14D",
            "min_drift_rows": 4 * season,
        },
        "training": {
            "window": "P730D",
            "backtest": {"folds": 1, "test_size": spec.horizon, "gap": spec.horizon},
            "selection": {
                "candidates": ["naive", "seasonal_naive", "auto_ets", "auto_theta"],
                "method": "combination",
                "top_k": 2,
                "combine": "weighted",
                "min_errors": spec.horizon,
            },
        },
        "daily": {"start": str(end), "history_end": str(end)},
    }


def write(
    directory: Path,
    series: int,
    frequency: Frequency = "daily",
    days: int = 730,
    seed: int = 0,
    fmt: Literal["parquet", "csv"] = "parquet",
    end: date = END,
    partition: int = 1000,
) -> Path:
    """The table (one Parquet row group, or one CSV block, per ``partition`` series) and its YAML in
    ``directory``; returns the YAML's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    name = f"{frequency}_{series}"
    table = directory / f"{name}.{fmt}"
    table.unlink(missing_ok=True)
    writer: pq.ParquetWriter | None = None
    try:
        for number, frame in enumerate(frames(series, frequency, days, seed, end, partition)):
            if fmt == "csv":
                frame.assign(time=frame["time"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
                    table, mode="a", header=number == 0, index=False
                )
                continue
            chunk = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(table, chunk.schema)
            writer.write_table(chunk)
    finally:
        if writer is not None:
            writer.close()
    settings = config(name, frequency, table.name, fmt, series, end)
    if fmt == "csv":
        settings["source"]["timestamp_format"] = "%Y-%m-%d %H:%M:%S"  # type: ignore[index]
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.series", description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=1000, help="how many series")
    parser.add_argument("--frequency", choices=sorted(SPECS), default="daily", help="the series' time step")
    parser.add_argument("--days", type=int, default=730, help="days of history up to --end")
    parser.add_argument("--end", type=date.fromisoformat, default=END, help="the last day, YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=0, help="the same seed draws the same series")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="the table's format")
    parser.add_argument("--partition", type=int, default=1000, help="series per row group (memory holds one)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the table and its YAML")
    args = parser.parse_args(argv)
    path = write(args.out, args.series, args.frequency, args.days, args.seed, args.format, args.end, args.partition)
    print(path)


if __name__ == "__main__":
    main()
