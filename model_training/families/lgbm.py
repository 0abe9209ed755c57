"""Fitting LightGBM, one booster per horizon step (LightGBM has no multi-output trees).

On a GPU it uses the CUDA or OpenCL build when the installed wheel has one, else the CPU (with a
log line); the probe lives in :mod:`model_training.devices`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from model_bundle.families.lgbm import LightGBMForecaster
from model_training.devices import lightgbm_device_type
from model_training.families.tabular import AnchoredTreeTrainer, HeldOut


class LightGBMTrainer(AnchoredTreeTrainer, LightGBMForecaster):
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "random_state": 42,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }

    @classmethod
    def quantile_params(cls, quantile: float) -> dict[str, Any]:
        """What fits the ``quantile`` of each step instead of its mean (intervals.method: quantile)."""
        return {"objective": "quantile", "alpha": quantile}

    def _fit_changes(self, x: np.ndarray, changes: np.ndarray, validation: HeldOut | None) -> None:
        import lightgbm as lgb

        params = {**self.params, "device_type": lightgbm_device_type(self.device)}
        self.fit_device = params["device_type"]  # "cpu" when this LightGBM build cannot use the GPU
        self.boosters = []
        for step in range(changes.shape[1]):
            model = lgb.LGBMRegressor(**params)
            model.fit(x, changes[:, step])
            self.boosters.append(model.booster_)
