"""M4's training values as a dataset the platform ingests: ``python -m benchmarks.m4.export``.

M4's files hold one row per series and no dates; a dataset is long rows of entity, time and value.
Each series' training values get the grid times :mod:`benchmarks.m4.platform` gives them (every
series ends on 2024-01-01, a Monday, as its test values follow the last one), so that
``configs/datasets/m4_hourly.yaml`` and ``m4_weekly.yaml`` run through ``make demo`` like any other
dataset. The test values stay out: they are what ``make bench-m4`` scores against.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.m4 import data
from benchmarks.m4.platform import training_rows
from core.columns import EVENT_TIMESTAMP
from core.files import write_text_atomically

TARGETS = {"hourly": "m4_hourly.csv", "weekly": "m4_weekly.csv"}


def export(frequency: str, directory: Path = data.M4_DIR) -> Path:
    """Write one frequency's training values as ``series,time,value`` rows; returns the file."""
    series = data.load(frequency)
    rows = training_rows(series, data.FREQUENCIES[frequency])
    rows = rows.rename(columns={EVENT_TIMESTAMP: "time", "value_lag_0": "value"})
    rows["time"] = rows["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    path = directory / TARGETS[frequency]
    write_text_atomically(rows.to_csv(index=False), path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.m4.export", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frequency", choices=sorted(TARGETS), action="append", help="hourly and/or weekly (default: both)"
    )
    parser.add_argument("--out", type=Path, default=data.M4_DIR, help="the folder the CSV files are written to")
    args = parser.parse_args(argv)
    for frequency in args.frequency or sorted(TARGETS):
        path = export(frequency, args.out)
        print(f"{frequency}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
