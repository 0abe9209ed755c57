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

    @classmethod
    def quantile_params(cls, quantile: float) -> dict[str, Any]:
        """What fits the ``quantile`` of each step instead of its mean (intervals.method: quantile)."""
        return {"objective": "reg:quantileerror", "quantile_alpha": quantile}

    def _fit_changes(self, x: np.ndarray, changes: np.ndarray, validation: HeldOut | None) -> None:
        import xgboost as xgb

        # XGBoost's quantile loss takes one target at a time: then one booster per step.
        per_step = self.params.get("objective") == "reg:quantileerror" and changes.shape[1] > 1
        targets = [changes[:, [step]] for step in range(changes.shape[1])] if per_step else [changes]
        boosters = []
        for y in targets:
            model = xgb.XGBRegressor(**self.params, device=self.device.xgboost)
            model.fit(x, y)
            boosters.append(model.get_booster())
        # Where XGBoost really trained: asked for CUDA without a usable GPU, it warns and takes the
        # CPU, and its config says so (read before serving's reset below overwrites it).
        self.fit_device = str(json.loads(boosters[0].save_config())["learner"]["generic_param"]["device"])
        # Serving runs on CPUs: the boosters predict there whatever they were trained on.
        for booster in boosters:
            booster.set_param({"device": "cpu"})
        self.booster, self.step_boosters = (None, boosters) if per_step else (boosters[0], [])
