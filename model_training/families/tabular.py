"""Shared part of the gradient-boosted tree families: they learn the change from the current target.

Trees cannot extrapolate past the levels they saw, but the change from the newest observed value is
close to stationary; the forecast is that value plus the predicted change. With ``relative_levels``
(the default) the target's other lags and rolling means enter as differences from that value too, so
a series that moves to levels never seen in training still looks familiar to the trees. Missing
features are filled with training medians by the :class:`Preprocessor` that travels in the bundle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from configs.dataset import DatasetConfig
from feature_store.features import feature_names, lag_name
from model_training.devices import CPU, Device
from model_training.forecasters import Validation
from model_training.preprocessing import Preprocessor

# (features, changes) of held-out rows, already transformed.
HeldOut = tuple[np.ndarray, np.ndarray]


class AnchoredTreeForecaster:
    family: ClassVar[str]
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, anchor: str, columns: list[str], params: dict[str, Any] | None = None, device: Device = CPU):
        self.anchor = anchor
        params = dict(params or {})
        self.relative_levels = bool(params.pop("relative_levels", True))
        self.params = {**self.DEFAULTS, **params}
        self.device = device
        self.preprocessor = Preprocessor(columns=columns)
        target = anchor.removesuffix(lag_name("", 0))
        levels = (f"{target}_lag_", f"{target}_mean_")
        self._level_columns = [i for i, c in enumerate(columns) if c.startswith(levels) and c != anchor]

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, params: dict[str, Any] | None = None, device: Device = CPU) -> Any:
        return cls(anchor=lag_name(dataset.target, 0), columns=feature_names(dataset), params=params, device=device)

    # Each family implements these three on numpy arrays of features and changes.
    def _fit_changes(self, x: np.ndarray, changes: np.ndarray, validation: HeldOut | None) -> None:
        raise NotImplementedError

    def _predict_changes(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _save_model(self, directory: Path) -> None:
        raise NotImplementedError

    def _load_model(self, directory: Path) -> None:
        raise NotImplementedError

    def _inputs(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The model's input matrix and the anchor column (the current target, median-filled)."""
        x = self.preprocessor.transform(features)
        anchor = x[:, [self.preprocessor.columns.index(self.anchor)]].copy()
        if self.relative_levels and self._level_columns:
            x[:, self._level_columns] -= anchor
        return x, anchor

    def fit(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None) -> Any:
        self.preprocessor.fit(features)
        held_out = None
        if validation is not None:
            x_valid, anchor_valid = self._inputs(validation[0])
            held_out = (x_valid, validation[1] - anchor_valid)
        x, anchor = self._inputs(features)
        self._fit_changes(x, targets - anchor, held_out)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        x, anchor = self._inputs(features)
        changes = np.asarray(self._predict_changes(x), dtype=np.float64)
        return changes.reshape(len(features), -1) + anchor

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._save_model(directory)
        meta = {
            "anchor": self.anchor,
            "params": {**self.params, "relative_levels": self.relative_levels},
            "preprocessor": self.preprocessor.to_dict(),
        }
        (directory / f"{self.family}.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Any:
        meta = json.loads((directory / f"{cls.family}.json").read_text())
        forecaster = cls(anchor=meta["anchor"], columns=meta["preprocessor"]["columns"], params=meta["params"])
        forecaster.preprocessor = Preprocessor.from_dict(meta["preprocessor"])
        forecaster._load_model(directory)
        return forecaster
