"""XGBoost, one multi-output model for all H steps (fitting: :mod:`model_training.families.xgb`), or
one booster per step where the objective takes one target at a time (the quantile loss).

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
    step_boosters: list[Any] = []

    def _predict_changes(self, x: np.ndarray) -> np.ndarray:
        if self.step_boosters:
            return np.column_stack([np.ravel(booster.inplace_predict(x)) for booster in self.step_boosters])
        if self.booster is None:
            raise RuntimeError("model used before fit")
        return np.asarray(self.booster.inplace_predict(x))

    def _save_model(self, directory: Path) -> None:
        if self.step_boosters:
            for step, booster in enumerate(self.step_boosters, start=1):
                booster.save_model(directory / f"model_step_{step}.ubj")
        else:
            self.booster.save_model(directory / "model.ubj")

    def _load_model(self, directory: Path) -> None:
        import xgboost as xgb

        if (directory / "model.ubj").is_file():
            self.booster = xgb.Booster(model_file=directory / "model.ubj")
            return
        files = sorted(directory.glob("model_step_*.ubj"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        self.step_boosters = [xgb.Booster(model_file=path) for path in files]
