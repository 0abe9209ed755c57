"""NLinear: subtract the window's last value, one linear layer, add the value back."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from model_bundle.families.linear import LinearWindowForecaster


class NLinearForecaster(LinearWindowForecaster):
    family: ClassVar[str] = "nlinear"

    def _forward(self, window: np.ndarray) -> np.ndarray:
        last = window[:, -1:]
        return (window - last) @ self.weights["linear.weight"].T + self.weights["linear.bias"] + last
