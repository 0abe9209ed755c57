"""The MLflow connection: configured once per process, at its entrypoint; read through plain clients.

* :func:`configure` points MLflow's process-wide state (tracking and registry URIs, and the
  basic-auth login, which MLflow reads from the environment only) at the settings' server. The
  entrypoints call it (the CLIs, a DAG task before it runs, the service at startup, the
  benchmarks); library code never does.
* :func:`client` is an ``MlflowClient`` of the settings' URIs: it creates no folder, no experiment
  and changes no environment variable, so a reader (the service's champion poll) stays a reader.
* :func:`experiment_id` finds the experiment that runs go to and creates it when missing: only code
  that starts runs asks for it.
* :func:`require_configured` is how library code that uses MLflow's process-wide API (runs, logged
  models, ``models:/`` URIs) makes sure the entrypoint pointed it at the same registry.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
# Series up to which a run carries a metric per series (``backtest_mae_<series>``, the gate's
# ``holdout_mae_<series>``): past it the run's table of series holds them. MLflow reads a run's
# metrics back one key at a time (a model logged to the run fetches each one's history), and its
# UI lists them all: a hundred thousand series' metrics made one training's logging take hours.
ENTITY_METRICS_UP_TO = 100


def literal(value: str) -> str:
    """``value`` as a string constant of an MLflow search filter, which it can only be compared with,
    never end (``name = {literal(name)}``). MLflow's filter language has no escape inside a constant
    (a backslash stays a backslash), so a value holding a single quote goes in double quotes, and one
    holding both kinds is refused: a name or tag from a CLI or a form cannot change the filter."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} holds both kinds of quotes: an MLflow search filter cannot compare it")


class MlflowNotConfiguredError(RuntimeError):
    """MLflow's process-wide state points elsewhere than the settings a library call was given."""


def registry_uri(settings: Settings) -> str:
    return settings.mlflow_registry_uri or settings.tracking_uri


def configure(settings: Settings) -> None:
    """Point this process's MLflow at the settings' tracking server and registry (an entrypoint's job).

    Through MLflow's own environment variables, so configuring costs no import of MLflow; once MLflow
    is imported its process-wide URIs may have been set explicitly, so those are set too.
    """
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    os.environ["MLFLOW_REGISTRY_URI"] = registry_uri(settings)
    # MLflow's client reads a server's basic-auth login from its environment, nowhere else.
    if settings.mlflow_tracking_username is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_tracking_username
    if settings.mlflow_tracking_password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_tracking_password.get_secret_value()
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_registry_uri(registry_uri(settings))


def require_configured(settings: Settings) -> None:
    """Raise unless :func:`configure` pointed this process at the settings' tracking server and registry:
    MLflow's process-wide API would otherwise log to, or load from, another registry without a word."""
    import mlflow

    configured = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    if configured != (settings.tracking_uri, registry_uri(settings)):
        raise MlflowNotConfiguredError(
            f"MLflow points at tracking {configured[0]!r} and registry {configured[1]!r}, not at these settings' "
            f"{settings.tracking_uri!r}: the entrypoint calls model_registry.tracking.configure(settings) first"
        )


def client(settings: Settings) -> MlflowClient:
    """A client of the settings' tracking server and registry; no side effects."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=registry_uri(settings))


def experiment_id(settings: Settings) -> str:
    """The id of the settings' experiment, created (with its artifact root) when it does not exist yet."""
    from mlflow.exceptions import MlflowException

    if settings.tracking_uri.startswith("sqlite:///"):  # the first run of a local registry makes its folder
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(
            mlflow_client.create_experiment(settings.mlflow_experiment, artifact_location=settings.mlflow_artifact_root)
        )
    except MlflowException:  # another process created it first
        experiment = mlflow_client.get_experiment_by_name(settings.mlflow_experiment)
        if experiment is None:
            raise
        return str(experiment.experiment_id)
