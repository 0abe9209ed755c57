"""Logging a fitted model as one MLflow PyFunc bundle: the model's files, the predict-side code, pins.

The bundle's code is :mod:`model_bundle` alone (the families' fitted models and the PyFunc wrapper),
so a registered version carries what predicting needs and nothing of training, registration or
orchestration. Logging does not register: :func:`model_registry.registry.register_challenger` does,
after checking the run's output.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import model_bundle
from core.settings import Settings
from model_bundle.forecasters import Predictor, predictor_class
from model_bundle.intervals import BandSource
from model_bundle.outputs import forecast_frame
from model_bundle.pyfunc import BUNDLE_ARTIFACT, write_bundle_dir
from model_registry.tracking import require_configured

# The package a bundle ships as its code, wherever it is installed.
BUNDLE_PACKAGE = Path(model_bundle.__file__).resolve().parent
ENTRY_FILE = BUNDLE_PACKAGE / "pyfunc_entry.py"
MODEL_URI_TAG = "model_uri"
# The same model fitted on every labelled row, logged in the same run (training.refit): what serves.
REFIT_URI_TAG = "refit_model_uri"
BUNDLE_REQUIREMENTS = ["mlflow", "cloudpickle", "numpy", "pandas"]


def pinned_requirements(family: str) -> list[str]:
    """What loading the bundle needs: the common set plus the family's own library, pinned."""
    packages = [*BUNDLE_REQUIREMENTS, *predictor_class(family).serving_requirements]
    return [f"{package}=={installed_version(package)}" for package in packages]


def log_bundle(
    settings: Settings,
    forecaster: Predictor,
    meta: dict[str, Any],
    input_example: pd.DataFrame,
    calibration: BandSource | None = None,
    name: str = "model",
    uri_tag: str = MODEL_URI_TAG,
) -> str:
    """Log the fitted forecaster (and its intervals' calibration) as a PyFunc ``name`` in the active run;
    returns the model URI, also set as the run's tag ``uri_tag``. The input schema is the feature
    columns and, optional, the dataset's entity column (``meta["entity_column"]``) that picks each
    row's own bands; a per-series model
    (``meta["history_column"]``) also takes each row's entity, time and history, all required."""
    import mlflow
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import DataType
    from mlflow.types.schema import Array, ColSpec, Schema

    require_configured(settings)
    if mlflow.active_run() is None:
        raise RuntimeError("log_bundle needs an active MLflow run")
    history = meta.get("history_column")
    numeric = [c for c in input_example.columns if c in meta.get("features", input_example.columns)]
    features = input_example[numeric].astype("float64")
    example = features
    if history:  # a per-series model: each row's entity, time (naive UTC, as MLflow takes it) and history
        time_column = meta["time_column"]
        example = features.assign(
            **{
                meta["entity_column"]: input_example[meta["entity_column"]].astype(str).to_numpy(),
                time_column: pd.DatetimeIndex(input_example[time_column]).tz_convert("UTC").tz_localize(None),
                history: [np.asarray(w, dtype=np.float64).tolist() for w in input_example[history]],
            }
        )
    output = forecast_frame(np.asarray(forecaster.predict(example), dtype=np.float64), calibration, None, features)
    inferred = infer_signature(features, output)
    # Every feature is required, whatever the example holds: MLflow marks a column whose example
    # values include a missing one (the first rows of a series have no lags yet) as optional, and an
    # optional feature would be left out of what the bundle is asked to predict from.
    assert inferred.inputs is not None
    inputs: list[Any] = [ColSpec(spec.type, spec.name, required=True) for spec in inferred.inputs.inputs]
    if history:
        inputs.append(ColSpec("string", meta["entity_column"], required=True))
        inputs.append(ColSpec("datetime", meta["time_column"], required=True))
        inputs.append(ColSpec(Array(DataType.double), history, required=True))
    elif meta.get("entity_column"):
        inputs.append(ColSpec("string", meta["entity_column"], required=False))
    signature = ModelSignature(inputs=Schema(inputs), outputs=inferred.outputs)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = write_bundle_dir(Path(tmp) / BUNDLE_ARTIFACT, forecaster, meta, calibration)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(ENTRY_FILE),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            code_paths=[str(BUNDLE_PACKAGE)],
            signature=signature,
            input_example=example,
            pip_requirements=pinned_requirements(meta["family"]),
        )
    mlflow.set_tag(uri_tag, info.model_uri)
    return str(info.model_uri)
