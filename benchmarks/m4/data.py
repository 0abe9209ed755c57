"""M4's files as arrays: each series' training values and its test values, in the files' order."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.settings import PROJECT_ROOT

M4_DIR = PROJECT_ROOT / "data" / "m4"


@dataclass(frozen=True)
class Frequency:
    """One of M4's frequencies as the competition scored it."""

    name: str  # "Hourly", "Weekly": the files' prefix
    horizon: int
    seasonal_period: int  # m of MASE's in-sample seasonal difference and of Naive2's seasonality test


FREQUENCIES: dict[str, Frequency] = {
    "hourly": Frequency("Hourly", horizon=48, seasonal_period=24),
    # The competition took m = 1 for weekly data: MASE's scale is the naive in-sample error.
    "weekly": Frequency("Weekly", horizon=13, seasonal_period=1),
}


@dataclass(frozen=True)
class M4Series:
    ids: list[str]
    train: list[np.ndarray]  # each series' training values, oldest first, of its own length
    test: np.ndarray  # (series, H): the values the forecasts are scored on


def _rows(path: Path) -> dict[str, np.ndarray]:
    """{series id: its values}, the padding's empty cells dropped."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)  # V1, V2, ...
        return {row[0]: np.array([float(v) for v in row[1:] if v != ""]) for row in reader}


def load(frequency: str, directory: Path = M4_DIR) -> M4Series:
    """The training and test values of every series of ``frequency`` ("hourly", "weekly")."""
    spec = FREQUENCIES[frequency]
    train = _rows(directory / f"{spec.name}-train.csv")
    test = _rows(directory / f"{spec.name}-test.csv")
    if train.keys() != test.keys():
        raise ValueError(f"{spec.name}: the training and test files name different series")
    lengths = {len(values) for values in test.values()}
    if lengths != {spec.horizon}:
        raise ValueError(f"{spec.name}: test values per series {sorted(lengths)}, expected {spec.horizon}")
    ids = list(train)
    return M4Series(ids=ids, train=[train[i] for i in ids], test=np.stack([test[i] for i in ids]))
