"""XGBoost, one multi-output model for all H steps (fitting: :mod:`model_training.families.xgb`).

The saved booster is loaded and run as a plain ``xgboost.Booster``: predicting needs XGBoost alone,
not the scikit-learn wrapper (nor scikit-learn) that fitting uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model_bundle.families.tabular import AnchoredTreeForecaster


class XGBoostForecaster(AnchoredTreeForecaster):
    family: ClassVar[str] = "xgboost"
    serving_requirements: ClassVar[tuple[str, ...]] = ("xgboost",)
    booster: Any = None

    def _predict_changes(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("model used before fit")
        return np.asarray(self.booster.inplace_predict(x))

    def _save_model(self, directory: Path) -> None:
        self.booster.save_model(directory / "model.ubj")

    def _load_model(self, directory: Path) -> None:
        import xgboost as xgb

        self.booster = xgb.Booster(model_file=directory / "model.ubj")
