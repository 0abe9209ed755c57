"""Shared part of the linear look-back families (NLinear, DLinear; Zeng et al. 2023), predict side.

They read the target's last ``lookback`` values (the ``window`` columns, oldest first), standardised,
and map them linearly to the next H values, the standardisation undone on the way out. With
``scaling: series`` (what training sets) each row is standardised with its own window's mean and
standard deviation (reversible instance normalisation, Kim et al. 2022), so every series is learnt on
its own scale and a series of levels near 700,000 weighs no more in the fit than one near 10; with
``scaling: dataset`` (bundles saved before it existed) with the training rows' one mean and scale.
The fitted weights are a plain ``.npz`` and the forecast is computed with numpy, so predicting needs
no PyTorch; the networks that fit them are in :mod:`model_training.families.linear`, and a test keeps
both forward passes equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from model_bundle.preprocessing import Preprocessor, row_scales


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

    def _standardised(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows' windows standardised, and the (rows, 1) mean and scale that undo it."""
        raw = self.preprocessor.transform(features)
        if self.params.get("scaling", "dataset") == "series":
            mean, scale = row_scales(raw)
        else:
            mean, scale = np.full((len(raw), 1), self.mean), np.full((len(raw), 1), self.scale)
        return (raw - mean) / scale, mean, scale

    def _windows(self, features: pd.DataFrame) -> np.ndarray:
        return self._standardised(features)[0]

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        if not self.weights:
            raise RuntimeError("model used before fit")
        windows, mean, scale = self._standardised(features)
        return self._forward(windows) * scale + mean

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
