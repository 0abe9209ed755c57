"""Fitting the linear look-back families (NLinear, DLinear; Zeng et al. 2023).

``solver: adam`` (the default) follows the paper's recipe: Adam, MSE, the learning rate halved every
epoch, early stopping on held-out rows with the best epoch's weights kept; on a GPU the forward pass
runs in bfloat16 autocast. The networks are linear in their weights, so ``solver: ridge`` solves the
same least-squares problem exactly instead, with an L2 penalty ``ridge_alpha`` (a tuning choice).
The fitted weights become the numpy model of :mod:`model_bundle.families.linear`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP, lag_name
from core.dataset import DatasetConfig
from model_bundle.families.linear import LinearWindowForecaster
from model_training.devices import CPU, Device, seed_everything
from model_training.forecasters import Validation

log = logging.getLogger(__name__)


def contiguous_lags(lags: list[int]) -> int:
    """How many consecutive lags 0, 1, 2, ... the feature rows carry."""
    present, count = set(lags), 0
    while count in present:
        count += 1
    return count


class LinearWindowTrainer(LinearWindowForecaster):
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "learning_rate": 0.005,
        "batch_size": 32,
        "epochs": 10,
        "patience": 3,
        "lr_decay": 0.5,
        "weight_decay": 0.0,
        "validation_fraction": 0.1,
        "seed": 42,
        "solver": "adam",
        "ridge_alpha": 1.0,
        "quantile": None,  # a number in (0, 1): fit that quantile with the pinball loss instead of the mean
        "scaling": "series",  # each row on its own window's scale; "dataset": the training rows' one scale
    }

    def __init__(self, window: list[str], horizon: int, params: dict[str, Any] | None = None, device: Device = CPU):
        super().__init__(window, horizon, params)
        self.device = device

    @classmethod
    def quantile_params(cls, quantile: float) -> dict[str, Any]:
        """What fits the ``quantile`` of each step instead of its mean (intervals.method: quantile): the
        pinball loss, which only the gradient solver minimises."""
        return {"solver": "adam", "quantile": quantile}

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, params: dict[str, Any] | None = None, device: Device = CPU) -> Any:
        params = dict(params or {})
        available = contiguous_lags(dataset.target_lags)
        lookback = int(params.pop("lookback", available))
        if lookback > available or lookback < 1:
            raise ValueError(
                f"{cls.family} with lookback {lookback} needs target lags 0..{lookback - 1}; the dataset's features "
                f"carry 0..{available - 1} (set feature_engineering.target_lags)"
            )
        window = [lag_name(dataset.target, k) for k in range(lookback - 1, -1, -1)]
        return cls(window, dataset.horizon, params, device)

    # Each family defines its network (torch), the numpy forward pass being the model's own.
    def _module(self) -> Any:
        raise NotImplementedError

    # For the ridge solver: the forecast as design @ W + b + offset, and W, b back into the weights.
    def _design(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _set_linear(self, w: np.ndarray, b: np.ndarray) -> None:
        raise NotImplementedError

    def _split(self, features: pd.DataFrame, targets: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, Validation]:
        """Hold out the newest timestamps for early stopping, ``horizon`` steps after the last
        training row so no training label reaches into them."""
        stamps = features[EVENT_TIMESTAMP] if EVENT_TIMESTAMP in features else pd.Series(range(len(features)))
        stamps = stamps.reset_index(drop=True)
        unique = np.sort(stamps.unique())
        start = int(len(unique) * (1 - float(self.params["validation_fraction"])))
        if start - self.horizon < 1 or start >= len(unique):
            raise ValueError(f"too few rows ({len(unique)} time steps) to hold out a validation window")
        held = (stamps >= unique[start]).to_numpy()
        kept = (stamps < unique[start - self.horizon]).to_numpy()
        return features[kept], targets[kept], (features[held], targets[held])

    def fit(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None) -> Any:
        solver = self.params["solver"]
        if solver not in ("adam", "ridge"):
            raise ValueError(f"unknown solver {solver!r}: use adam or ridge")
        if solver == "ridge":
            if self.params.get("quantile") is not None:
                raise ValueError("a quantile is fitted with solver adam (the pinball loss has no closed form)")
            return self._fit_ridge(features, targets, validation)
        if validation is None:
            features, targets, validation = self._split(features, targets)
        self._fit_scaling(features)
        return self._fit_adam(features, targets, validation)

    def _fit_scaling(self, features: pd.DataFrame) -> None:
        self.preprocessor.fit(features)
        anchor = features[self.preprocessor.columns[-1]].astype("float64")
        self.mean = float(anchor.mean())
        self.scale = float(anchor.std()) or 1.0

    def _fit_ridge(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None) -> Any:
        """Closed-form ridge regression on every training row (no rows held out: nothing stops early)."""
        started = time.monotonic()
        self._fit_scaling(features)
        windows, mean, scale = self._standardised(features)
        design, offset = self._design(windows)
        a = np.hstack([design, np.ones((len(design), 1))])
        penalty = float(self.params["ridge_alpha"]) * np.eye(a.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        solution = np.linalg.solve(a.T @ a + penalty, a.T @ ((targets - mean) / scale - offset))
        self._set_linear(solution[:-1], solution[-1])
        self.history = {"solver": "ridge", "train_rows": len(a), "seconds": time.monotonic() - started}
        if validation is not None:
            error = (self.predict(validation[0]) - validation[1]) / self._standardised(validation[0])[2]
            self.history["validation_mse_scaled"] = float(np.mean(error**2))
        return self

    def _fit_adam(self, features: pd.DataFrame, targets: np.ndarray, validation: Validation) -> Any:
        import torch

        seed_everything(int(self.params["seed"]), self.device)
        device = torch.device(self.device.torch)

        def tensor(values: np.ndarray) -> Any:
            return torch.as_tensor(np.ascontiguousarray(values), dtype=torch.float32, device=device)

        windows, mean, scale = self._standardised(features)
        x, y = tensor(windows), tensor((targets - mean) / scale)
        windows, mean, scale = self._standardised(validation[0])
        x_val, y_val = tensor(windows), tensor((validation[1] - mean) / scale)
        module = self._module().to(device)
        lr = float(self.params["learning_rate"])
        optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=float(self.params["weight_decay"]))
        generator = torch.Generator(device="cpu").manual_seed(int(self.params["seed"]))
        batch = int(self.params["batch_size"])
        quantile = self.params.get("quantile")

        def loss_of(forecast: Any, target: Any) -> Any:
            """MSE, or the pinball loss of ``quantile``: its minimiser is that quantile of the target."""
            if quantile is None:
                return torch.nn.functional.mse_loss(forecast, target)
            miss = target - forecast
            return torch.mean(torch.maximum(float(quantile) * miss, (float(quantile) - 1) * miss))

        best, best_state, best_epoch, stale, epochs_run = float("inf"), None, -1, 0, 0
        started = time.monotonic()
        for epoch in range(int(self.params["epochs"])):
            module.train()
            order = torch.randperm(len(x), generator=generator).to(device)
            for begin in range(0, len(x), batch):
                rows = order[begin : begin + batch]
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.device.is_cuda):
                    loss = loss_of(module(x[rows]).float(), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            module.eval()
            with torch.no_grad():
                val_loss = float(loss_of(module(x_val), y_val))
            epochs_run = epoch + 1
            if val_loss < best:
                best, best_epoch, stale = val_loss, epoch, 0
                best_state = {k: v.detach().cpu().double().numpy().copy() for k, v in module.state_dict().items()}
            else:
                stale += 1
                if stale >= int(self.params["patience"]):
                    break
            for group in optimizer.param_groups:
                group["lr"] = lr * float(self.params["lr_decay"]) ** (epoch + 1)
        if best_state is None:  # every epoch's validation loss was NaN or infinite
            raise FloatingPointError(f"{self.family} diverged (learning rate {lr}): no finite validation loss")
        self.weights = best_state
        self.history = {
            "solver": "adam",
            "epochs_run": epochs_run,
            "best_epoch": best_epoch + 1,
            "best_validation_mse_scaled": best,  # the pinball loss when fitting a quantile
            "loss": "mse" if quantile is None else f"pinball {quantile}",
            "train_rows": len(x),
            "validation_rows": len(x_val),
            "seconds": time.monotonic() - started,
            # Where the weights really were while fitting, not where they were asked to be.
            "device": next(module.parameters()).device.type,
        }
        log.info("%s: %s", self.family, self.history)
        return self
