"""DLinear: a moving average splits the window into trend and remainder, one linear layer each."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from model_training.families.linear import LinearWindowForecaster


def moving_average(window: np.ndarray, kernel: int) -> np.ndarray:
    """Centred mean over ``kernel`` values, the ends padded by repeating the first and last value."""
    pad = (kernel - 1) // 2
    padded = np.concatenate([np.repeat(window[:, :1], pad, axis=1), window, np.repeat(window[:, -1:], pad, axis=1)], 1)
    sums = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    return (sums[:, kernel:] - sums[:, :-kernel]) / kernel


class DLinearForecaster(LinearWindowForecaster):
    family: ClassVar[str] = "dlinear"
    DEFAULTS: ClassVar[dict[str, Any]] = {**LinearWindowForecaster.DEFAULTS, "kernel_size": 25}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        kernel = int(self.params["kernel_size"])
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"dlinear kernel_size must be odd and positive, got {kernel}")
        self.kernel = kernel

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

    def _forward(self, window: np.ndarray) -> np.ndarray:
        w = self.weights
        trend = moving_average(window, self.kernel)
        seasonal = (window - trend) @ w["seasonal.weight"].T + w["seasonal.bias"]
        return seasonal + trend @ w["trend.weight"].T + w["trend.bias"]

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
