"""The stateful preprocessor: everything learned from data before the model sees it.

It is fitted on training rows only (per backtest fold, and once on the final window), and travels
inside the model bundle as plain JSON, so serving transforms features exactly as training did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Preprocessor:
    """Fixes column order and fills missing values with training medians."""

    columns: list[str]
    medians: dict[str, float] = field(default_factory=dict)
    _median_vector: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"training frame lacks feature columns: {missing}")
        medians = frame[self.columns].astype("float64").median()
        # A column with no value at all in training gets 0: it carries no information either way.
        self.medians = {c: (0.0 if math.isnan(v) else float(v)) for c, v in medians.items()}
        self._median_vector = None
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.medians:
            raise RuntimeError("preprocessor used before fit")
        # numpy, not DataFrame.fillna: the same values in a fraction of the time (serving calls this per request)
        if list(frame.columns) == self.columns:  # serving builds frames in this order: no column selection
            values = frame.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        else:
            missing = [c for c in self.columns if c not in frame.columns]
            if missing:
                raise KeyError(f"input lacks feature columns: {missing}")
            values = frame[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)
        rows, cols = np.nonzero(np.isnan(values))
        if len(rows):
            values[rows, cols] = self.median_vector()[cols]
        return values

    def median_vector(self) -> np.ndarray:
        """The medians in column order (cached: the fitted medians do not change)."""
        if self._median_vector is None:
            self._median_vector = np.array([self.medians[c] for c in self.columns], dtype=np.float64)
        return self._median_vector

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "medians": self.medians}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(columns=list(data["columns"]), medians={k: float(v) for k, v in data["medians"].items()})


# Fewer levels than this in a row and their spread is too few changes to be its scale (two lags, as
# weekly and yearly data have by default, hold one change: equal values give a scale of nothing).
MIN_SPREAD_LEVELS = 4


def row_scales(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (mean, scale) of the target's ``levels`` it holds, (rows, 1) each: the spread of the
    levels where a row holds at least ``MIN_SPREAD_LEVELS``, else their mean absolute level (the scale
    DeepAR and Chronos put every series on); a scale that is nothing next to the levels is 1, as a
    flat row's changes are nothing on any scale."""
    mean = levels.mean(axis=1, keepdims=True)
    if levels.shape[1] >= MIN_SPREAD_LEVELS:
        scale = levels.std(axis=1, keepdims=True)
    else:
        scale = np.abs(levels).mean(axis=1, keepdims=True)
    return mean, np.where(scale > 1e-12 * np.maximum(np.abs(mean), 1.0), scale, 1.0)
