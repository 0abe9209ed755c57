"""Fitting XGBoost, one multi-output model for all H steps; ``device="cuda"`` on a GPU."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from model_bundle.families.xgb import XGBoostForecaster
from model_training.families.tabular import AnchoredTreeTrainer, HeldOut


class XGBoostTrainer(AnchoredTreeTrainer, XGBoostForecaster):
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "max_depth": 6,
        "learning_rate": 0.05,
        "tree_method": "hist",
        "multi_strategy": "one_output_per_tree",
        "random_state": 42,
    }

    def _fit_changes(self, x: np.ndarray, changes: np.ndarray, validation: HeldOut | None) -> None:
        import xgboost as xgb

        model = xgb.XGBRegressor(**self.params, device=self.device.xgboost)
        model.fit(x, changes)
        self.booster = model.get_booster()
        # Where XGBoost really trained: asked for CUDA without a usable GPU, it warns and takes the
        # CPU, and its config says so (read before serving's reset below overwrites it).
        self.fit_device = str(json.loads(self.booster.save_config())["learner"]["generic_param"]["device"])
        # Serving runs on CPUs: the booster predicts there whatever it was trained on.
        self.booster.set_param({"device": "cpu"})
