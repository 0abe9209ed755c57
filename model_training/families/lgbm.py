"""LightGBM, one booster per horizon step (LightGBM has no multi-output trees).

On a GPU it uses the CUDA or OpenCL build when the installed wheel has one, else the CPU (with a
log line); the probe lives in :mod:`model_training.devices`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model_training.devices import lightgbm_device_type
from model_training.families.tabular import AnchoredTreeForecaster, HeldOut


class LightGBMForecaster(AnchoredTreeForecaster):
    family: ClassVar[str] = "lightgbm"
    serving_requirements: ClassVar[tuple[str, ...]] = ("lightgbm",)
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
    boosters: list[Any]

    def _fit_changes(self, x: np.ndarray, changes: np.ndarray, validation: HeldOut | None) -> None:
        import lightgbm as lgb

        params = {**self.params, "device_type": lightgbm_device_type(self.device)}
        self.boosters = []
        for step in range(changes.shape[1]):
            model = lgb.LGBMRegressor(**params)
            model.fit(x, changes[:, step])
            self.boosters.append(model.booster_)

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
