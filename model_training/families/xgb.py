"""Fitting XGBoost, one multi-output model for all H steps; ``device="cuda"`` on a GPU."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from model_bundle.families.xgb import XGBoostForecaster
from model_training.families.tabular import AnchoredTreeTrainer, HeldOut
from model_training.forecasters import Validation


class XGBoostTrainer(AnchoredTreeTrainer, XGBoostForecaster):
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "max_depth": 6,
        "learning_rate": 0.05,
        "tree_method": "hist",
        "multi_strategy": "one_output_per_tree",
        "random_state": 42,
        # Row and column samples seeded from the round's number, not drawn from one random engine per
        # thread: a round grows the same trees whatever ran before it on the thread, so tuning can
        # boost the folds of a trial in turns (model_training.backtest.BoostedFolds) and keep rounds
        # that a fit reproduces.
        "seed_per_iteration": True,
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

    def start(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation) -> None:
        """Boosting round by round (:class:`model_training.forecasters.Boosted`): the booster, its data
        and its parameters are built as ``XGBRegressor.fit`` builds them, so ``n`` rounds here grow the
        same trees as a fit with ``n_estimators=n``."""
        import xgboost as xgb

        if self.params.get("objective") == "reg:quantileerror":
            raise ValueError("boosting round by round fits the mean objective only")
        self.preprocessor.fit(features)
        x, changes, _ = self._changes(features, targets)
        x_valid, changes_valid, scale = self._changes(*validation)
        model = xgb.XGBRegressor(**self.params, device=self.device.xgboost, eval_metric="mae")
        options = {"nthread": model.n_jobs, "max_bin": model.max_bin}
        self._train = xgb.QuantileDMatrix(x, changes, **options)
        # Each held-out row weighted by its scale: the weighted MAE of the scaled changes, times the
        # mean weight, is the MAE in the target's own units, as a fit's backtest scores it.
        self._valid = xgb.QuantileDMatrix(x_valid, changes_valid, weight=scale.ravel(), ref=self._train, **options)
        self._units = float(scale.mean())
        self._booster = xgb.Booster(model.get_xgb_params(), [self._train, self._valid])
        self._rounds = 0

    def boost(self, rounds: int) -> np.ndarray:
        errors = []
        for _ in range(rounds):
            self._booster.update(self._train, self._rounds)
            # "[i]\tvalid-mae:0.123": the cached validation predictions grow by one round, not re-run.
            line = self._booster.eval_set([(self._valid, "valid")], self._rounds)
            errors.append(float(line.rsplit(":", 1)[1]) * self._units)
            self._rounds += 1
        return np.asarray(errors)
