"""The model bundle: one MLflow PyFunc holding the fitted preprocessor and model of a family.

Everything fitted travels as data (JSON and the family's native model file), not as pickled
objects, so the bundle loads across Python and library versions of the same pins. Logging a bundle
is :func:`model_registry.bundles.log_bundle`; this is the side that loads and predicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

BUNDLE_ARTIFACT = "bundle"
META_FILE = "bundle.json"


def step_columns(horizon: int) -> list[str]:
    return [f"y_{step}" for step in range(1, horizon + 1)]


class ForecastBundle(PythonModel):
    """PyFunc wrapper: a frame of feature rows in, a frame of H step forecasts out."""

    def load_context(self, context: Any) -> None:
        from model_bundle.forecasters import load

        directory = Path(context.artifacts[BUNDLE_ARTIFACT])
        self.meta = json.loads((directory / META_FILE).read_text())
        self.forecaster = load(self.meta["family"], directory)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return pd.DataFrame(self.predict_array(model_input), columns=step_columns(int(self.meta["horizon"])))

    def predict_array(self, model_input: pd.DataFrame) -> np.ndarray:
        """The forecasts as a (rows, H) float64 array: what the service needs, without a frame around it."""
        return np.asarray(self.forecaster.predict(model_input.astype("float64", copy=False)), dtype=np.float64)


def write_bundle_dir(directory: Path, forecaster: Any, meta: dict[str, Any]) -> Path:
    forecaster.save(directory)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return directory
