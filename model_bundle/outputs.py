"""A bundle's inputs and outputs by name: which input columns are features, which output columns are
point forecasts and which are bands (``y_<step>``, ``y_<step>_lower_<level>``, ``y_<step>_upper_<level>``).

numpy and pandas only: the service reads these without importing MLflow's PyFunc machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from model_bundle.intervals import BandSource, level_key


def step_columns(horizon: int) -> list[str]:
    return [f"y_{step}" for step in range(1, horizon + 1)]


def point_columns(columns: Sequence[str]) -> list[str]:
    """The point-forecast columns (``y_<step>``) among a PyFunc output's, in step order."""
    return sorted((c for c in columns if c.startswith("y_") and c[2:].isdigit()), key=lambda c: int(c[2:]))


def point_forecast(output: pd.DataFrame) -> np.ndarray:
    """The (rows, H) point forecasts of a PyFunc output, without its bands."""
    return output[point_columns(list(output.columns))].to_numpy(dtype=np.float64)


def bands_of(output: pd.DataFrame) -> list[tuple[float, tuple[np.ndarray, np.ndarray]]]:
    """The (level, (lower, upper)) bands a PyFunc output holds, each bound (rows, H), narrowest level
    first; none for a version without intervals."""
    horizon = len(point_columns(list(output.columns)))
    suffix = "_lower_"
    keys = sorted({c.rsplit(suffix, 1)[1] for c in output.columns if suffix in c}, key=float)
    bands = []
    for key in keys:
        lower, upper = (
            output[[f"y_{h}_{side}_{key}" for h in range(1, horizon + 1)]].to_numpy(dtype=np.float64)
            for side in ("lower", "upper")
        )
        bands.append((float(key) / 100, (lower, upper)))
    return bands


def _type_name(spec: Any) -> str:
    return str(getattr(spec.type, "name", spec.type)).lower()


def feature_inputs(schema: Any) -> list[str]:
    """The numeric required columns of a bundle's input schema: its features (the entity column is
    a string; a per-series bundle's time and history are a datetime and an array)."""
    numeric = ("double", "float", "long", "integer")
    return [s.name for s in schema.inputs if getattr(s, "required", True) and _type_name(s) in numeric]


def history_input(schema: Any) -> str | None:
    """The history column a per-series bundle forecasts from (an array input); None for the others."""
    return next((s.name for s in schema.inputs if type(s.type).__name__ == "Array"), None)


def time_input(schema: Any) -> str | None:
    """The rows' time column of a per-series bundle (its newest history value is at that time)."""
    return next((s.name for s in schema.inputs if _type_name(s) == "datetime"), None)


def pyfunc_inputs(schema: Any, rows: pd.DataFrame, entity_column: str) -> pd.DataFrame:
    """What a registered bundle predicts from ``rows``: its features as float64 and, where its schema
    takes the entity column (bundles with intervals), each row's entity, which picks its own bands;
    a per-series bundle also each row's time (naive UTC, as MLflow's schema takes it) and history."""
    inputs = rows[feature_inputs(schema)].astype("float64")
    if entity_column in schema.input_names():
        inputs[entity_column] = rows[entity_column].astype(str).to_numpy()
    history, stamp = history_input(schema), time_input(schema)
    if history is not None and stamp is not None:
        if history not in rows.columns:
            raise KeyError(f"a per-series model forecasts from each row's {history}, which these rows lack")
        inputs[stamp] = pd.DatetimeIndex(rows[stamp]).tz_convert("UTC").tz_localize(None)
        inputs[history] = rows[history].to_numpy()
    return inputs


def band_columns(horizon: int, level: float, side: str) -> list[str]:
    return [f"y_{step}_{side}_{level_key(level)}" for step in range(1, horizon + 1)]


def forecast_frame(
    point: np.ndarray,
    calibration: BandSource | None,
    entities: Sequence[str] | None = None,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The PyFunc's output: point forecasts, then each level's lower and upper bounds."""
    horizon = point.shape[1]
    parts = [pd.DataFrame(point, columns=step_columns(horizon))]
    if calibration is not None:
        for level, (lower, upper) in calibration.bands(point, entities, features).items():
            parts.append(pd.DataFrame(lower, columns=band_columns(horizon, level, "lower")))
            parts.append(pd.DataFrame(upper, columns=band_columns(horizon, level, "upper")))
    return pd.concat(parts, axis=1)
