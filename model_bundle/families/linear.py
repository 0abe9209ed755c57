"""Shared part of the linear look-back families (NLinear, DLinear; Zeng et al. 2023), predict side.

They read the target's last ``lookback`` values (the ``window`` columns, oldest first), standardised
with training statistics, and map them linearly to the next H values. The fitted weights are a plain
``.npz`` and the forecast is computed with numpy, so predicting needs no PyTorch; the networks that
fit them are in :mod:`model_training.families.linear`, and a test keeps both forward passes equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from model_bundle.preprocessing import Preprocessor


class LinearWindowForecaster:
    family: ClassVar[str]
    serving_requirements: ClassVar[tuple[str, ...]] = ()
    # Trainers set the fitting defaults here; a loaded model has its parameters in full.
    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, window: list[str], horizon: int, params: dict[str, Any] | None = None):
        if not window:
            raise ValueError("lookback must be at least 1")
        self.horizon, self.lookback = horizon, len(window)
        self.params = {**self.DEFAULTS, **(params or {}), "lookback": self.lookback}
        self.preprocessor = Preprocessor(columns=list(window))
        self.mean, self.scale = 0.0, 1.0
        self.weights: dict[str, np.ndarray] = {}
        self.history: dict[str, Any] = {}

    # Each family defines its forward pass in numpy.
    def _forward(self, window: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _windows(self, features: pd.DataFrame) -> np.ndarray:
        return (self.preprocessor.transform(features) - self.mean) / self.scale

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        if not self.weights:
            raise RuntimeError("model used before fit")
        return self._forward(self._windows(features)) * self.scale + self.mean

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f"{self.family}_weights.npz").open("wb") as out:
            np.savez(out, allow_pickle=False, **self.weights)
        meta = {
            "horizon": self.horizon,
            "lookback": self.lookback,
            "params": self.params,
            "mean": self.mean,
            "scale": self.scale,
            "preprocessor": self.preprocessor.to_dict(),
            "history": self.history,
        }
        (directory / f"{self.family}.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Any:
        meta = json.loads((directory / f"{cls.family}.json").read_text())
        forecaster = cls(meta["preprocessor"]["columns"], meta["horizon"], meta["params"])
        forecaster.preprocessor = Preprocessor.from_dict(meta["preprocessor"])
        forecaster.mean, forecaster.scale, forecaster.history = meta["mean"], meta["scale"], meta["history"]
        with np.load(directory / f"{cls.family}_weights.npz", allow_pickle=False) as weights:
            forecaster.weights = {name: weights[name] for name in weights.files}
        return forecaster
