"""Registering bundles as model versions and moving the ``challenger``/``champion`` aliases."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pandas as pd

from configs.settings import Settings
from model_registry.tracking import CHALLENGER, CHAMPION, client

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Packages the bundle's code needs; shipped inside it so that it loads without this project installed.
BUNDLE_CODE = ["configs", "feature_store", "model_training", "model_registry"]
BUNDLE_REQUIREMENTS = [
    "mlflow",
    "cloudpickle",
    "numpy",
    "pandas",
    "pyarrow",
    "xgboost",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
]


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str


def pinned_requirements() -> list[str]:
    return [f"{package}=={installed_version(package)}" for package in BUNDLE_REQUIREMENTS]


def log_bundle(
    forecaster: Any,
    meta: dict[str, Any],
    input_example: pd.DataFrame,
    model_name: str,
) -> RegisteredVersion:
    """Log the fitted forecaster as a PyFunc in the active run and register a new version.

    The version gets the ``challenger`` alias; it serves only after :func:`promote`.
    """
    import mlflow
    from mlflow.models import infer_signature

    from model_registry.bundle import BUNDLE_ARTIFACT, write_bundle_dir

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_bundle needs an active MLflow run")
    example = input_example.astype("float64")
    output = pd.DataFrame(forecaster.predict(example))
    output.columns = [f"y_{step}" for step in range(1, output.shape[1] + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = write_bundle_dir(Path(tmp) / BUNDLE_ARTIFACT, forecaster, meta)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PROJECT_ROOT / "model_registry" / "pyfunc_entry.py"),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            code_paths=[str(PROJECT_ROOT / package) for package in BUNDLE_CODE],
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=pinned_requirements(),
            registered_model_name=model_name,
        )
    version = str(info.registered_model_version)
    mlflow_client = mlflow.MlflowClient()
    for key, value in {"run_id": run.info.run_id, "family": meta.get("family", "")}.items():
        mlflow_client.set_model_version_tag(model_name, version, key, str(value))
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version)
    log.info("registered %s version %s (alias %s)", model_name, version, CHALLENGER)
    return RegisteredVersion(name=model_name, version=version, run_id=run.info.run_id)


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    version: str
    reason: str
    model_mae: float
    baseline_mae: float


def promote(settings: Settings, model_name: str, version: str | None = None) -> PromotionDecision:
    """Move ``champion`` to a version (default: the challenger) if it beats seasonal naive.

    The backtest scores are read from the version's training run, so the decision rests on what
    was measured, not on what a caller says. The decision is recorded as version tags.
    """
    mlflow_client = client(settings)
    if version is None:
        version = mlflow_client.get_model_version_by_alias(model_name, CHALLENGER).version
    model_version = mlflow_client.get_model_version(model_name, version)
    if not model_version.run_id:
        raise RuntimeError(f"{model_name} v{version} has no training run to read its scores from")
    metrics = mlflow_client.get_run(model_version.run_id).data.metrics
    try:
        model_mae, baseline_mae = metrics["backtest_mae"], metrics["baseline_mae"]
    except KeyError as exc:
        raise RuntimeError(f"{model_name} v{version}: its run logged no backtest scores ({exc})") from None
    promoted = model_mae < baseline_mae
    reason = f"backtest MAE {model_mae:.4f} {'<' if promoted else '>='} seasonal naive {baseline_mae:.4f}"
    if promoted:
        mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
    for key, value in {
        "promotion_decision": "promoted" if promoted else "rejected",
        "promotion_reason": reason,
    }.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
    log.info("%s v%s: %s (%s)", model_name, version, "promoted" if promoted else "not promoted", reason)
    return PromotionDecision(promoted, str(version), reason, model_mae, baseline_mae)
