"""Seasonal naive for a dataset: which target lag each horizon step repeats. Nothing to fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.columns import lag_name
from core.dataset import DatasetConfig
from model_bundle.families.seasonal_naive import SeasonalNaive
from model_training.forecasters import Validation


class SeasonalNaiveTrainer(SeasonalNaive):
    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, seasonal_period: int | None = None, **_: Any) -> SeasonalNaiveTrainer:
        """``seasonal_period``: the dataset's by default; 1 gives naive, the last value for every step."""
        m = seasonal_period or dataset.seasonal_period
        missing = set(range(m)) - set(dataset.target_lags)
        if missing:
            raise ValueError(f"seasonal naive needs target lags 0..{m - 1}")
        # step h repeats the value k seasons back, k the fewest that reach the past: lag k*m - h
        columns = [lag_name(dataset.target, m * -(-h // m) - h) for h in range(1, dataset.horizon + 1)]
        return cls(columns, m)

    def fit(
        self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None
    ) -> SeasonalNaiveTrainer:
        return self


class NaiveTrainer(SeasonalNaiveTrainer):
    """Naive: the last value for every step (seasonal naive with a season of one step)."""

    family = "naive"

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, seasonal_period: int | None = None, **_: Any) -> NaiveTrainer:
        repeated = SeasonalNaiveTrainer.for_dataset(dataset, seasonal_period=1)
        return cls(repeated.columns, 1)
