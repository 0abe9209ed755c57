"""Model families for training: each family's trainer, and the one place they are registered.

A trainer is the family's fitted model (:mod:`model_bundle.families`) plus what fitting needs: the
dataset's columns, the training library, the device. Every family forecasts H steps directly from
one feature row. A new family is one predict-side module in ``model_bundle/families`` (registered in
``model_bundle.forecasters.PREDICTORS``), one trainer module in ``model_training/families`` and one
line in :data:`FAMILIES`. Families are imported on first use, so choosing one never imports the
others' heavy libraries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from model_bundle import forecasters as predictors
from model_bundle.families.seasonal_naive import SeasonalNaive
from model_bundle.forecasters import Predictor
from model_training.devices import Device

# (features, targets) of rows held out for early stopping.
Validation = tuple[pd.DataFrame, np.ndarray]

FAMILIES: dict[str, str] = {
    "seasonal_naive": "model_training.families.seasonal_naive:SeasonalNaiveTrainer",
    "xgboost": "model_training.families.xgb:XGBoostTrainer",
    "lightgbm": "model_training.families.lgbm:LightGBMTrainer",
    "nlinear": "model_training.families.nlinear:NLinearTrainer",
    "dlinear": "model_training.families.dlinear:DLinearTrainer",
    "naive": "model_training.families.seasonal_naive:NaiveTrainer",
    "random_walk_with_drift": "model_training.families.statistical:RandomWalkWithDriftTrainer",
    "auto_ets": "model_training.families.statistical:AutoETSTrainer",
    "mstl": "model_training.families.statistical:MSTLTrainer",
    "auto_theta": "model_training.families.statistical:AutoThetaTrainer",
    "auto_arima": "model_training.families.statistical:AutoARIMATrainer",
    "selection": "model_training.families.selection:SelectionTrainer",
}
BASELINE = "seasonal_naive"
# Families with a model per series, which forecast from each row's history (:mod:`core.history`).
PER_SERIES = {"random_walk_with_drift", "auto_ets", "auto_theta", "auto_arima", "mstl"}
# What the retraining form and the training CLI offer.
TRAINABLE = sorted(set(FAMILIES) - {BASELINE})
# The families that learn one model of all series from feature rows.
TABULAR = sorted(set(TRAINABLE) - PER_SERIES - {"naive", "selection"})


class Forecaster(Predictor, Protocol):
    """A model that can be fitted; once fitted, what it saves loads back as its family's Predictor."""

    def fit(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None) -> Forecaster:
        """``validation``: rows for early stopping; families that stop early carve their own
        (the newest rows of ``features``) when none is given."""
        ...


@runtime_checkable
class Boosted(Protocol):
    """A forecaster fitted in boosting rounds, scored on held-out rows after each one.

    Tuning trains the backtest folds of a trial side by side a few rounds at a time, prunes on the
    folds' mean error and picks one number of rounds for all folds on it (as ``xgboost.cv`` does),
    instead of sampling ``n_estimators`` and fitting each fold to the end.
    """

    def start(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation) -> None:
        """Prepare to boost on ``features`` with the mean objective, scoring ``validation``."""
        ...

    def boost(self, rounds: int) -> np.ndarray:
        """Add ``rounds`` rounds; the validation rows' mean absolute error after each of them."""
        ...


def forecast_rows(model: Predictor, rows: pd.DataFrame, source: pd.DataFrame, dataset: DatasetConfig) -> np.ndarray:
    """``model``'s forecasts of ``rows``; a per-series model gets each row's history from ``source``
    (rows with lag 0 and labels, e.g. the training set they come from; a window never reaches past
    its row's time, so the labels of ``source`` do not leak into the forecast)."""
    if getattr(model, "per_series", False):
        from core.history import with_history

        rows = with_history(rows, source, dataset)
    return np.asarray(model.predict(rows), dtype=np.float64)


def family_class(family: str) -> Any:
    return predictors.registered_class(FAMILIES, family)


def create(
    family: str, dataset: DatasetConfig, params: dict[str, Any] | None = None, device: Device | None = None
) -> Forecaster:
    """A fresh, unfitted forecaster: the config's parameters for the family, overridden by ``params``."""
    from model_training.devices import select

    merged = {**dataset.training.params.get(family, {}), **(params or {})}
    forecaster: Forecaster = family_class(family).for_dataset(dataset, params=merged, device=device or select())
    return forecaster


def quantile_params(family: str, quantile: float) -> dict[str, Any] | None:
    """The parameters that make ``family`` fit a quantile of each step (its quantile objective), or
    None for a family without one."""
    method = getattr(family_class(family), "quantile_params", None)
    return None if method is None else dict(method(quantile))


def baseline(dataset: DatasetConfig) -> SeasonalNaive:
    """The seasonal-naive forecaster of the dataset, which every gate and backtest compares with."""
    baseline: SeasonalNaive = family_class(BASELINE).for_dataset(dataset)
    return baseline


def baselines(dataset: DatasetConfig) -> dict[str, SeasonalNaive]:
    """The forecasts the promotion gate requires a model to beat: seasonal naive (the value one or more
    seasons back) and naive (the last value, for every step), the hard one on series whose level
    wanders more than it cycles."""
    naive: SeasonalNaive = family_class(BASELINE).for_dataset(dataset, seasonal_period=1)
    return {"seasonal naive": baseline(dataset), "naive": naive}


def load(family: str, directory: Path) -> Predictor:
    """A saved model, loaded as a bundle loads it (predict side only)."""
    return predictors.load(family, directory)
