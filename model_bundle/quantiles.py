"""Prediction intervals from models fitted with their family's quantile objective.

With ``intervals.method: quantile`` a bundle carries, next to its point model, one model of the same
family per band edge: the 80% band is the 0.1 and 0.9 quantiles, each fitted with LightGBM's
``quantile`` objective, XGBoost's ``reg:quantileerror`` or the pinball loss of the linear families.
Their forecasts are made consistent before they are answered: each band holds its point forecast
(quantile models fitted apart can cross it) and a wider level holds the narrower one. Each edge model
is saved in its family's own format under ``quantiles/<edge>/``, nothing pickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_bundle.intervals import CONFORMAL, INTERVALS_FILE, BandSource, Calibration

QUANTILE = "native_quantile"
QUANTILES_DIR = "quantiles"


def edges(level: float) -> tuple[float, float]:
    """The quantiles that bound a central band of ``level``: 0.8 -> (0.1, 0.9)."""
    return round((1 - level) / 2, 10), round((1 + level) / 2, 10)


def edge_key(quantile: float) -> str:
    return f"{quantile:g}"


@dataclass(frozen=True)
class QuantileBands:
    """Bands from one fitted model per edge (``models[edge_key(q)]``), all of one family."""

    levels: tuple[float, ...]
    family: str
    models: dict[str, Any]

    def bands(
        self, point: np.ndarray, entities: Sequence[str] | None = None, features: pd.DataFrame | None = None
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """Lower and upper bounds per level, narrowest first: each edge model's forecast, widened to
        hold the point forecast and the narrower levels' bands."""
        if features is None:
            raise ValueError("quantile bands are forecasts of their own: they need the feature rows")
        lower, upper = point, point
        out = {}
        for level in sorted(self.levels):
            low, high = (np.asarray(self.models[edge_key(q)].predict(features), dtype=np.float64) for q in edges(level))
            lower, upper = np.minimum(low, lower), np.maximum(high, upper)
            out[level] = (lower, upper)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": QUANTILE, "levels": list(self.levels), "family": self.family, "edges": sorted(self.models)}

    def save(self, directory: Path) -> None:
        for key, model in self.models.items():
            model.save(directory / QUANTILES_DIR / key)
        (directory / INTERVALS_FILE).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, directory: Path) -> QuantileBands:
        from model_bundle.forecasters import load

        data = json.loads((directory / INTERVALS_FILE).read_text())
        family = str(data["family"])
        models = {str(key): load(family, directory / QUANTILES_DIR / str(key)) for key in data["edges"]}
        return cls(levels=tuple(float(a) for a in data["levels"]), family=family, models=models)


def load_bands(directory: Path) -> BandSource | None:
    """A bundle's intervals, conformal or of quantile models; None for a version registered without."""
    path = directory / INTERVALS_FILE
    if not path.is_file():
        return None
    method = json.loads(path.read_text()).get("method", CONFORMAL)
    if method == CONFORMAL:
        return Calibration.load(directory)
    if method == QUANTILE:
        return QuantileBands.load(directory)
    raise ValueError(f"unknown interval method {method!r} in {path}")
