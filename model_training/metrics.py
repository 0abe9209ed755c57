"""Forecast error metrics over arrays shaped (rows, horizon)."""

from __future__ import annotations

import numpy as np


def mae(actual: np.ndarray, forecast: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.asarray(np.mean(np.abs(actual - forecast), axis=axis))


def rmse(actual: np.ndarray, forecast: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.asarray(np.sqrt(np.mean((actual - forecast) ** 2, axis=axis)))


def smape(actual: np.ndarray, forecast: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Symmetric MAPE in percent; a pair of zeros counts as no error."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2.0 * np.abs(actual - forecast), denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return np.asarray(100.0 * np.mean(ratio, axis=axis))


METRICS = {"mae": mae, "rmse": rmse, "smape": smape}
