"""Fitting NLinear: the network in torch, the design of the exact ridge fit."""

from __future__ import annotations

from typing import Any

import numpy as np

from model_bundle.families.nlinear import NLinearForecaster
from model_training.families.linear import LinearWindowTrainer


class NLinearTrainer(LinearWindowTrainer, NLinearForecaster):
    def _module(self) -> Any:
        import torch

        lookback, horizon = self.lookback, self.horizon

        class NLinear(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(lookback, horizon)

            def forward(self, window: torch.Tensor) -> torch.Tensor:
                last = window[:, -1:]
                return self.linear(window - last) + last

        return NLinear()

    def _design(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = window[:, -1:]
        return window - last, last

    def _set_linear(self, w: np.ndarray, b: np.ndarray) -> None:
        self.weights = {"linear.weight": w.T.copy(), "linear.bias": b.copy()}
