"""XGBoost, one multi-output model for all H steps; ``device="cuda"`` on a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model_training.families.tabular import AnchoredTreeForecaster, HeldOut


class XGBoostForecaster(AnchoredTreeForecaster):
    family: ClassVar[str] = "xgboost"
    serving_requirements: ClassVar[tuple[str, ...]] = ("xgboost",)
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "max_depth": 6,
        "learning_rate": 0.05,
        "tree_method": "hist",
        "multi_strategy": "one_output_per_tree",
        "random_state": 42,
    }
    model: Any = None

    def _fit_changes(self, x: np.ndarray, changes: np.ndarray, validation: HeldOut | None) -> None:
        import xgboost as xgb

        self.model = xgb.XGBRegressor(**self.params, device=self.device.xgboost)
        self.model.fit(x, changes)
        # Serving runs on CPUs: the booster predicts there whatever it was trained on.
        self.model.set_params(device="cpu")

    def _predict_changes(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("model used before fit")
        return np.asarray(self.model.predict(x))

    def _save_model(self, directory: Path) -> None:
        self.model.save_model(directory / "model.ubj")

    def _load_model(self, directory: Path) -> None:
        import xgboost as xgb

        self.model = xgb.XGBRegressor()
        self.model.load_model(directory / "model.ubj")
