"""DLinear: a moving average splits the window into trend and remainder, one linear layer each."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from model_bundle.families.linear import LinearWindowForecaster

DEFAULT_KERNEL = 25


def moving_average(window: np.ndarray, kernel: int) -> np.ndarray:
    """Centred mean over ``kernel`` values, the ends padded by repeating the first and last value."""
    pad = (kernel - 1) // 2
    padded = np.concatenate([np.repeat(window[:, :1], pad, axis=1), window, np.repeat(window[:, -1:], pad, axis=1)], 1)
    sums = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    return (sums[:, kernel:] - sums[:, :-kernel]) / kernel


class DLinearForecaster(LinearWindowForecaster):
    family: ClassVar[str] = "dlinear"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        kernel = int(self.params.setdefault("kernel_size", DEFAULT_KERNEL))
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"dlinear kernel_size must be odd and positive, got {kernel}")
        self.kernel = kernel

    def _forward(self, window: np.ndarray) -> np.ndarray:
        w = self.weights
        trend = moving_average(window, self.kernel)
        seasonal = (window - trend) @ w["seasonal.weight"].T + w["seasonal.bias"]
        return seasonal + trend @ w["trend.weight"].T + w["trend.bias"]
