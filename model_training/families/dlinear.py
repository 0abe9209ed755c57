"""Fitting DLinear: the network in torch, the design of the exact ridge fit."""

from __future__ import annotations

from typing import Any

import numpy as np

from model_bundle.families.dlinear import DLinearForecaster, moving_average
from model_training.families.linear import LinearWindowTrainer


class DLinearTrainer(LinearWindowTrainer, DLinearForecaster):
    def _module(self) -> Any:
        import torch

        lookback, horizon, kernel = self.lookback, self.horizon, self.kernel

        class DLinear(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.seasonal = torch.nn.Linear(lookback, horizon)
                self.trend = torch.nn.Linear(lookback, horizon)

            def forward(self, window: torch.Tensor) -> torch.Tensor:
                pad = (kernel - 1) // 2
                padded = torch.cat([window[:, :1].expand(-1, pad), window, window[:, -1:].expand(-1, pad)], dim=1)
                trend = torch.nn.functional.avg_pool1d(padded.unsqueeze(1), kernel, stride=1).squeeze(1)
                return self.seasonal(window - trend) + self.trend(trend)

        return DLinear()

    def _design(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        trend = moving_average(window, self.kernel)
        return np.hstack([window - trend, trend]), np.zeros((len(window), 1))

    def _set_linear(self, w: np.ndarray, b: np.ndarray) -> None:
        seasonal, trend = w[: self.lookback], w[self.lookback :]
        self.weights = {
            "seasonal.weight": seasonal.T.copy(),
            "seasonal.bias": b.copy(),
            "trend.weight": trend.T.copy(),
            "trend.bias": np.zeros_like(b),
        }
