"""Fitted models of every family behind one interface, and the one place they are registered.

Every family forecasts H steps directly (one output per step) from one feature row, saves itself as
data (JSON plus the library's own model format, no pickles) and loads back here without any training
code. Families are imported on first use, so loading one never imports the others' libraries.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

PREDICTORS: dict[str, str] = {
    "seasonal_naive": "model_bundle.families.seasonal_naive:SeasonalNaive",
    "xgboost": "model_bundle.families.xgb:XGBoostForecaster",
    "lightgbm": "model_bundle.families.lgbm:LightGBMForecaster",
    "nlinear": "model_bundle.families.nlinear:NLinearForecaster",
    "dlinear": "model_bundle.families.dlinear:DLinearForecaster",
    "naive": "model_bundle.families.seasonal_naive:SeasonalNaive",
    "selection": "model_bundle.families.selection:SelectedForecaster",
    **{
        family: "model_bundle.families.statistical:StatisticalForecaster"
        for family in ("random_walk_with_drift", "auto_ets", "auto_theta", "auto_arima", "mstl")
    },
}


class Predictor(Protocol):
    """A fitted model: (rows, features) in, (rows, H) forecasts out."""

    family: ClassVar[str]
    # Libraries that loading the saved model needs beyond numpy and pandas (a serving image installs them).
    serving_requirements: ClassVar[tuple[str, ...]]
    params: dict[str, Any]

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


def registered_class(registry: dict[str, str], family: str) -> Any:
    """The class a registry (family -> ``module:Class``) names for ``family``, imported on first use."""
    try:
        module_name, _, class_name = registry[family].partition(":")
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(registry)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def predictor_class(family: str) -> Any:
    return registered_class(PREDICTORS, family)


def load(family: str, directory: Path) -> Predictor:
    """The fitted model a family saved in ``directory``."""
    predictor: Predictor = predictor_class(family).load(directory)
    return predictor
