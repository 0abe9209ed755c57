"""Seasonal naive: the baseline every other family must beat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from configs.dataset import DatasetConfig
from feature_store.features import lag_name
from model_training.forecasters import Validation


class SeasonalNaive:
    """y(t+h) = y(t+h-k*m), the last value one or more seasons back."""

    family: ClassVar[str] = "seasonal_naive"
    serving_requirements: ClassVar[tuple[str, ...]] = ()

    def __init__(self, target: str, horizon: int, seasonal_period: int):
        self.target, self.horizon, self.seasonal_period = target, horizon, seasonal_period
        self.params: dict[str, Any] = {"seasonal_period": seasonal_period}

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, **_: Any) -> SeasonalNaive:
        missing = set(range(dataset.seasonal_period)) - set(dataset.target_lags)
        if missing:
            raise ValueError(f"seasonal naive needs target lags 0..{dataset.seasonal_period - 1}")
        return cls(dataset.target, dataset.horizon, dataset.seasonal_period)

    def lag_columns(self) -> list[str]:
        m = self.seasonal_period
        return [lag_name(self.target, m * -(-h // m) - h) for h in range(1, self.horizon + 1)]

    def fit(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None) -> SeasonalNaive:
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return features[self.lag_columns()].to_numpy(dtype=np.float64)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"target": self.target, "horizon": self.horizon, "seasonal_period": self.seasonal_period}
        (directory / "seasonal_naive.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> SeasonalNaive:
        return cls(**json.loads((directory / "seasonal_naive.json").read_text()))
