"""The model bundle: one MLflow PyFunc holding the fitted preprocessor and model of a family, and the
calibration of its prediction intervals.

Everything fitted travels as data (JSON and the family's native model file), not as pickled
objects, so the bundle loads across Python and library versions of the same pins. Logging a bundle
is :func:`model_registry.bundles.log_bundle`; this is the side that loads and predicts.

The PyFunc's output has the point forecast ``y_<step>`` and, per level, ``y_<step>_lower_<level>``
and ``y_<step>_upper_<level>`` (level in percent: ``y_3_upper_95``). Rows that carry the dataset's
entity column (optional in the input schema) get their entity's bands. A version registered before
bundles carried a calibration answers point forecasts only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from model_bundle.intervals import BandSource
from model_bundle.outputs import forecast_frame
from model_bundle.quantiles import load_bands

BUNDLE_ARTIFACT = "bundle"
META_FILE = "bundle.json"


class ForecastBundle(PythonModel):
    """PyFunc wrapper: a frame of feature rows in, a frame of H step forecasts (and bands) out."""

    def load_context(self, context: Any) -> None:
        from model_bundle.forecasters import load

        directory = Path(context.artifacts[BUNDLE_ARTIFACT])
        self.meta = json.loads((directory / META_FILE).read_text())
        self.forecaster = load(self.meta["family"], directory)
        self.calibration = load_bands(directory)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        entity_column = self.meta.get("entity_column")
        entities = None
        if entity_column and entity_column in model_input.columns:
            entities = model_input[entity_column].astype(str).tolist()
        features = self.meta.get("features")
        if self.meta.get("history_column"):  # a per-series model: each row's entity, time and history too
            numeric = model_input[[c for c in features or [] if c in model_input.columns]].astype("float64")
            return forecast_frame(self.predict_array(model_input), self.calibration, entities, numeric)
        if features and set(features) <= set(model_input.columns):
            model_input = model_input[features]  # the model's columns only (an entity column is not one)
        features = model_input.astype("float64", copy=False)
        return forecast_frame(self.predict_array(features), self.calibration, entities, features)

    def predict_array(self, model_input: pd.DataFrame) -> np.ndarray:
        """The forecasts as a (rows, H) float64 array: what the service needs, without a frame around it.
        A per-series model's rows carry their entity, time and history besides the features."""
        if not self.meta.get("history_column"):
            model_input = model_input.astype("float64", copy=False)
        return np.asarray(self.forecaster.predict(model_input), dtype=np.float64)


def write_bundle_dir(
    directory: Path, forecaster: Any, meta: dict[str, Any], calibration: BandSource | None = None
) -> Path:
    forecaster.save(directory)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    if calibration is not None:
        calibration.save(directory)
    return directory
