"""Model families behind one interface: fit on (features, H future targets), predict H steps.

Every family forecasts directly (one output per horizon step). A new family is one class with this
interface, added to :data:`FAMILIES`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from configs.dataset import DatasetConfig
from feature_store.features import lag_name
from model_training.preprocessing import Preprocessor


class Forecaster(Protocol):
    family: ClassVar[str]

    def fit(self, features: pd.DataFrame, targets: np.ndarray) -> Forecaster: ...

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


class SeasonalNaive:
    """y(t+h) = y(t+h-k*m), the last value one or more seasons back: the baseline to beat."""

    family: ClassVar[str] = "seasonal_naive"

    def __init__(self, target: str, horizon: int, seasonal_period: int):
        self.target, self.horizon, self.seasonal_period = target, horizon, seasonal_period

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, **_: Any) -> SeasonalNaive:
        missing = set(range(dataset.seasonal_period)) - set(dataset.target_lags)
        if missing:
            raise ValueError(f"seasonal naive needs target lags 0..{dataset.seasonal_period - 1}")
        return cls(dataset.target, dataset.horizon, dataset.seasonal_period)

    def lag_columns(self) -> list[str]:
        m = self.seasonal_period
        return [lag_name(self.target, m * -(-h // m) - h) for h in range(1, self.horizon + 1)]

    def fit(self, features: pd.DataFrame, targets: np.ndarray) -> SeasonalNaive:
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


class XGBoostForecaster:
    """Multi-output XGBoost on the change from the current target value (trees can't extrapolate
    levels, but changes are stationary enough for them)."""

    family: ClassVar[str] = "xgboost"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "max_depth": 6,
        "learning_rate": 0.05,
        "tree_method": "hist",
        "multi_strategy": "one_output_per_tree",
        "random_state": 42,
    }

    def __init__(self, anchor: str, columns: list[str], params: dict[str, Any] | None = None):
        self.anchor = anchor
        self.params = {**self.DEFAULTS, **(params or {})}
        self.preprocessor = Preprocessor(columns=columns)
        self.model: Any = None

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, params: dict[str, Any] | None = None) -> XGBoostForecaster:
        from feature_store.features import feature_names

        merged = {**dataset.training.params.get(cls.family, {}), **(params or {})}
        return cls(anchor=lag_name(dataset.target, 0), columns=feature_names(dataset), params=merged)

    def fit(self, features: pd.DataFrame, targets: np.ndarray) -> XGBoostForecaster:
        import xgboost as xgb

        self.preprocessor.fit(features)
        anchor = self._anchor(features)
        self.model = xgb.XGBRegressor(**self.params)
        self.model.fit(self.preprocessor.transform(features), targets - anchor)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("model used before fit")
        deltas = np.asarray(self.model.predict(self.preprocessor.transform(features)), dtype=np.float64)
        return deltas.reshape(len(features), -1) + self._anchor(features)

    def _anchor(self, features: pd.DataFrame) -> np.ndarray:
        anchor = features[self.anchor].astype("float64").fillna(self.preprocessor.medians[self.anchor])
        return anchor.to_numpy()[:, None]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_model(directory / "model.ubj")
        meta = {"anchor": self.anchor, "params": self.params, "preprocessor": self.preprocessor.to_dict()}
        (directory / "xgboost.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> XGBoostForecaster:
        import xgboost as xgb

        meta = json.loads((directory / "xgboost.json").read_text())
        forecaster = cls(anchor=meta["anchor"], columns=meta["preprocessor"]["columns"], params=meta["params"])
        forecaster.preprocessor = Preprocessor.from_dict(meta["preprocessor"])
        forecaster.model = xgb.XGBRegressor()
        forecaster.model.load_model(directory / "model.ubj")
        return forecaster


FAMILIES: dict[str, Any] = {
    SeasonalNaive.family: SeasonalNaive,
    XGBoostForecaster.family: XGBoostForecaster,
}


def create(family: str, dataset: DatasetConfig, params: dict[str, Any] | None = None) -> Forecaster:
    try:
        factory = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}") from None
    forecaster: Forecaster = factory.for_dataset(dataset, params=params)
    return forecaster


def load(family: str, directory: Path) -> Forecaster:
    forecaster: Forecaster = FAMILIES[family].load(directory)
    return forecaster
