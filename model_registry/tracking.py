"""MLflow connection: one place that points the client at the configured tracking server."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from configs.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"


def configure(settings: Settings) -> str:
    """Set tracking and registry URIs and make sure the experiment exists; returns its id."""
    import mlflow

    settings.home.mkdir(parents=True, exist_ok=True)
    _login(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_registry_uri or settings.tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        experiment_id = mlflow.create_experiment(
            settings.mlflow_experiment, artifact_location=settings.mlflow_artifact_root
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def _login(settings: Settings) -> None:
    """MLflow's client reads a server's basic-auth login from its environment, nowhere else."""
    if settings.mlflow_tracking_username is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_tracking_username
    if settings.mlflow_tracking_password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_tracking_password.get_secret_value()


def client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    configure(settings)
    return MlflowClient()
