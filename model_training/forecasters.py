"""Model families behind one interface, and the one place they are registered.

Every family forecasts H steps directly (one output per step) from one feature row, saves itself as
data (JSON plus the library's own model format, no pickles) and loads back without its training
library where it can. A new family is one module under ``model_training/families`` plus one line in
:data:`FAMILIES`. Families are imported on first use, so choosing one never imports the others'
heavy libraries.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from configs.dataset import DatasetConfig
from model_training.devices import Device

# (features, targets) of rows held out for early stopping.
Validation = tuple[pd.DataFrame, np.ndarray]

FAMILIES: dict[str, str] = {
    "seasonal_naive": "model_training.families.seasonal_naive:SeasonalNaive",
    "xgboost": "model_training.families.xgb:XGBoostForecaster",
    "lightgbm": "model_training.families.lgbm:LightGBMForecaster",
    "nlinear": "model_training.families.nlinear:NLinearForecaster",
    "dlinear": "model_training.families.dlinear:DLinearForecaster",
}
BASELINE = "seasonal_naive"
TRAINABLE = sorted(set(FAMILIES) - {BASELINE})


class Forecaster(Protocol):
    family: ClassVar[str]
    # Libraries that loading the saved model needs beyond numpy and pandas (a serving image installs them).
    serving_requirements: ClassVar[tuple[str, ...]]
    params: dict[str, Any]

    def fit(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None) -> Forecaster:
        """``validation``: rows for early stopping; families that stop early carve their own
        (the newest rows of ``features``) when none is given."""
        ...

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


def family_class(family: str) -> Any:
    try:
        module_name, _, class_name = FAMILIES[family].partition(":")
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def create(
    family: str, dataset: DatasetConfig, params: dict[str, Any] | None = None, device: Device | None = None
) -> Forecaster:
    """A fresh, unfitted forecaster: the config's parameters for the family, overridden by ``params``."""
    from model_training.devices import select

    merged = {**dataset.training.params.get(family, {}), **(params or {})}
    forecaster: Forecaster = family_class(family).for_dataset(dataset, params=merged, device=device or select())
    return forecaster


def load(family: str, directory: Path) -> Forecaster:
    forecaster: Forecaster = family_class(family).load(directory)
    return forecaster
