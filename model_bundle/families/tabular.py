"""Shared part of the gradient-boosted tree families: they predict the change from the current target.

Trees cannot extrapolate past the levels they saw, but the change from the newest observed value is
close to stationary; the forecast is that value (the ``anchor`` column) plus the predicted change.
With ``relative_levels`` (the default) the target's other levels (its lags and rolling means) enter
as differences from the anchor too, so a series that moves to levels never seen in training still
looks familiar to the trees. Missing features are filled with training medians by the
:class:`Preprocessor` saved with the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from model_bundle.preprocessing import Preprocessor


class AnchoredTreeForecaster:
    family: ClassVar[str]
    serving_requirements: ClassVar[tuple[str, ...]] = ()
    # Trainers set their library's defaults here; a loaded model has its parameters in full.
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, anchor: str, columns: list[str], levels: list[str], params: dict[str, Any] | None = None):
        self.anchor = anchor
        params = dict(params or {})
        self.relative_levels = bool(params.pop("relative_levels", True))
        self.params = {**self.DEFAULTS, **params}
        self.preprocessor = Preprocessor(columns=columns)
        self.levels = [c for c in levels if c in columns and c != anchor]
        self._level_columns = [columns.index(c) for c in self.levels]

    # Each family implements these on numpy arrays of features and changes.
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

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        x, anchor = self._inputs(features)
        changes = np.asarray(self._predict_changes(x), dtype=np.float64)
        return changes.reshape(len(features), -1) + anchor

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._save_model(directory)
        meta = {
            "anchor": self.anchor,
            "levels": self.levels,
            "params": {**self.params, "relative_levels": self.relative_levels},
            "preprocessor": self.preprocessor.to_dict(),
        }
        (directory / f"{self.family}.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Any:
        meta = json.loads((directory / f"{cls.family}.json").read_text())
        columns = meta["preprocessor"]["columns"]
        forecaster = cls(anchor=meta["anchor"], columns=columns, levels=meta["levels"], params=meta["params"])
        forecaster.preprocessor = Preprocessor.from_dict(meta["preprocessor"])
        forecaster._load_model(directory)
        return forecaster
