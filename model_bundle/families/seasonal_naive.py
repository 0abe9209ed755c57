"""Seasonal naive: the baseline every other family must beat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd


class SeasonalNaive:
    """y(t+h) = y(t+h-k*m), the last value one or more seasons back: column ``h-1`` of ``columns``
    is the target lag that step ``h`` repeats."""

    family: ClassVar[str] = "seasonal_naive"
    serving_requirements: ClassVar[tuple[str, ...]] = ()

    def __init__(self, columns: list[str], seasonal_period: int):
        self.columns, self.seasonal_period = list(columns), seasonal_period
        self.horizon = len(self.columns)
        self.params: dict[str, Any] = {"seasonal_period": seasonal_period}

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return features[self.columns].to_numpy(dtype=np.float64)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"columns": self.columns, "seasonal_period": self.seasonal_period}
        (directory / "seasonal_naive.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> SeasonalNaive:
        return cls(**json.loads((directory / "seasonal_naive.json").read_text()))
