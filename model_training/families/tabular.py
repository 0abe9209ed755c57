"""Fitting the gradient-boosted tree families (:mod:`model_bundle.families.tabular`): they learn the
change from the current target, with the target's other levels relative to it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.columns import feature_names, lag_name, rolling_names, target_level_names
from core.dataset import DatasetConfig
from model_bundle.families.tabular import AnchoredTreeForecaster
from model_training.devices import CPU, Device
from model_training.forecasters import Validation

# (features, changes) of held-out rows, already transformed.
HeldOut = tuple[np.ndarray, np.ndarray]


class AnchoredTreeTrainer(AnchoredTreeForecaster):
    def __init__(self, *args: Any, device: Device = CPU, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.device = device
        self.fit_device: str | None = None  # where the library really trained, as it reports it

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, params: dict[str, Any] | None = None, device: Device = CPU) -> Any:
        return cls(
            anchor=lag_name(dataset.target, 0),
            columns=feature_names(dataset),
            levels=target_level_names(dataset),
            params={"scaling": "series", **(params or {})},
            spreads=[rolling_names(dataset.target, w)[1] for w in dataset.feature_engineering.rolling_windows],
            device=device,
        )

    # Each family fits its library's model on numpy arrays of features and changes.
    def _fit_changes(self, x: np.ndarray, changes: np.ndarray, validation: HeldOut | None) -> None:
        raise NotImplementedError

    def fit(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None) -> Any:
        self.preprocessor.fit(features)
        held_out = None
        if validation is not None:
            held_out = self._changes(*validation)[:2]
        self._fit_changes(*self._changes(features, targets)[:2], held_out)
        return self
