"""Shared part of the gradient-boosted tree families: they predict the change from the current target.

Trees cannot extrapolate past the levels they saw, but the change from the newest observed value is
close to stationary; the forecast is that value (the ``anchor`` column) plus the predicted change.
With ``relative_levels`` (the default) the target's other levels (its lags and rolling means) enter
as differences from the anchor too, so a series that moves to levels never seen in training still
looks familiar to the trees. With ``scaling: series`` (what training sets) every row is also put on
its own series' scale: the spread of the target's levels the row holds (its lags and rolling means)
divides the changes the trees learn, the levels, the target's rolling spreads and the current value
(as its distance from the row's mean level), so a series near 700,000 and one near 10 are learnt
alike and neither's errors outweigh the other's in the fit (mlforecast scales each series' lags and
target the same way with its local scalers, from the training values; here from the row's own
values, so a series that appears after training, or whose scale moves, is scaled all the same).
Missing features are filled with training medians by the :class:`Preprocessor` saved with the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from model_bundle.preprocessing import Preprocessor, row_scales


class AnchoredTreeForecaster:
    family: ClassVar[str]
    serving_requirements: ClassVar[tuple[str, ...]] = ()
    # Trainers set their library's defaults here; a loaded model has its parameters in full.
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        anchor: str,
        columns: list[str],
        levels: list[str],
        params: dict[str, Any] | None = None,
        spreads: list[str] | None = None,
    ):
        self.anchor = anchor
        params = {**self.DEFAULTS, **(params or {})}
        self.relative_levels = bool(params.pop("relative_levels", True))
        # A model saved before series scaling existed learnt on the rows' own units.
        self.series_scale = params.pop("scaling", "dataset") == "series"
        self.params = params
        self.preprocessor = Preprocessor(columns=columns)
        self.levels = [c for c in levels if c in columns and c != anchor]
        self.spreads = [c for c in spreads or [] if c in columns]
        self._level_columns = [columns.index(c) for c in self.levels]
        self._spread_columns = [columns.index(c) for c in self.spreads]
        self._anchor_column = columns.index(anchor)

    # Each family implements these on numpy arrays of features and changes.
    def _predict_changes(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _save_model(self, directory: Path) -> None:
        raise NotImplementedError

    def _load_model(self, directory: Path) -> None:
        raise NotImplementedError

    def _inputs(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's input matrix, the anchor column (the current target, median-filled) and each
        row's scale (ones without series scaling): a forecast is ``anchor + scale * change``."""
        x = self.preprocessor.transform(features)
        anchor = x[:, [self._anchor_column]].copy()
        scale = np.ones_like(anchor)
        if self.series_scale:
            mean, scale = row_scales(x[:, [self._anchor_column, *self._level_columns]])
            x[:, [self._anchor_column]] = (anchor - mean) / scale
            if not self.relative_levels:
                x[:, self._level_columns] = (x[:, self._level_columns] - mean) / scale
            x[:, self._spread_columns] /= scale
        if self.relative_levels and self._level_columns:
            x[:, self._level_columns] = (x[:, self._level_columns] - anchor) / scale
        return x, anchor, scale

    def _changes(self, features: pd.DataFrame, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The input matrix of ``features``, the changes the trees learn (to ``targets`` from the current
        value, on each row's scale) and each row's scale."""
        x, anchor, scale = self._inputs(features)
        return x, (targets - anchor) / scale, scale

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        x, anchor, scale = self._inputs(features)
        changes = np.asarray(self._predict_changes(x), dtype=np.float64)
        return changes.reshape(len(features), -1) * scale + anchor

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._save_model(directory)
        scaling = "series" if self.series_scale else "dataset"
        meta = {
            "anchor": self.anchor,
            "levels": self.levels,
            "spreads": self.spreads,
            "params": {**self.params, "relative_levels": self.relative_levels, "scaling": scaling},
            "preprocessor": self.preprocessor.to_dict(),
        }
        (directory / f"{self.family}.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Any:
        meta = json.loads((directory / f"{cls.family}.json").read_text())
        columns = meta["preprocessor"]["columns"]
        forecaster = cls(
            anchor=meta["anchor"],
            columns=columns,
            levels=meta["levels"],
            params=meta["params"],
            spreads=meta.get("spreads", []),
        )
        forecaster.preprocessor = Preprocessor.from_dict(meta["preprocessor"])
        forecaster._load_model(directory)
        return forecaster
