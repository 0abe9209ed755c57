"""LightGBM, one booster per horizon step (fitting: :mod:`model_training.families.lgbm`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model_bundle.families.tabular import AnchoredTreeForecaster


class LightGBMForecaster(AnchoredTreeForecaster):
    family: ClassVar[str] = "lightgbm"
    serving_requirements: ClassVar[tuple[str, ...]] = ("lightgbm",)
    boosters: list[Any]

    def _predict_changes(self, x: np.ndarray) -> np.ndarray:
        if not getattr(self, "boosters", None):
            raise RuntimeError("model used before fit")
        return np.column_stack([booster.predict(x) for booster in self.boosters])

    def _save_model(self, directory: Path) -> None:
        for step, booster in enumerate(self.boosters, start=1):
            booster.save_model(str(directory / f"lightgbm_step_{step}.txt"))

    def _load_model(self, directory: Path) -> None:
        import lightgbm as lgb

        files = sorted(directory.glob("lightgbm_step_*.txt"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        self.boosters = [lgb.Booster(model_file=str(path)) for path in files]
