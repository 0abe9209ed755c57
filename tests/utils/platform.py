"""The platform under test settings: its environment, its data chain, a private registry copy."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings
from tests.utils.data import SYNTHETIC_END, write_dataset


def run_data_chain(settings: Settings, dataset: DatasetConfig, logical_date: date) -> None:
    """ingest -> validate -> features -> apply -> materialize, as the demo runs them."""
    from core.windows import end_of
    from data_pipeline.ingest import ingest
    from data_pipeline.validation import validate
    from feature_store.build import write_offline_source
    from feature_store.repo import apply, materialize

    ingest(dataset, logical_date, settings)
    validate(dataset, logical_date, settings)
    write_offline_source(settings, dataset, logical_date)
    apply(settings, dataset)
    materialize(settings, dataset, end_of(logical_date))


def trained_settings(root: Path) -> Settings:
    """The local-profile settings of the champion ``promote_a_champion`` made under ``root``."""
    return Settings(home=root / "home", dataset_config=root / "dataset" / "synthetic.yaml", _env_file=None)  # type: ignore[call-arg]


def promote_a_champion(root: Path) -> None:
    """The synthetic dataset written under ``root`` and taken through the whole chain there."""
    from model_registry import tracking

    config = write_dataset(root / "dataset")
    settings = trained_settings(root)
    assert settings.dataset_config == config
    tracking.configure(settings)
    promote_first_version(settings, DatasetConfig.from_yaml(config))


def promote_first_version(settings: Settings, dataset: DatasetConfig) -> str:
    """Data, features, a trained version that passes the champion gate, promoted: the chain the
    retraining DAG runs, in process. Returns the version."""
    from model_registry.promotion import promote_version
    from model_registry.registry import register_challenger
    from model_training.train import train
    from model_validation.champion import evaluate_challenger, holdout_of

    run_data_chain(settings, dataset, SYNTHETIC_END)
    outcome = train(settings, dataset, SYNTHETIC_END)
    name = settings.model_name(dataset.name)
    version = register_challenger(settings, name, outcome.run_id).version
    holdout = holdout_of(settings, dataset, SYNTHETIC_END)
    decision = evaluate_challenger(settings, dataset, name, version, holdout)
    assert decision.passed, decision.reason
    promote_version(settings, name, version, decision.reason)
    return version


def on_registry_copy(settings: Settings, directory: Path, **update: Any) -> Settings:
    """``settings`` on a copy of their MLflow database in ``directory``, MLflow pointed at it: a test's
    alias moves and runs stay in it. The service it starts does not watch the registry
    (``model_poll_seconds=0``)."""
    from model_registry import tracking

    copy = directory / "mlflow.db"
    with (
        contextlib.closing(sqlite3.connect(settings.home / "mlflow.db")) as source,
        contextlib.closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
    copied = settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{copy}", "model_poll_seconds": 0, **update})
    tracking.configure(copied)
    return copied


def assert_serves_version(client: Any, version: str) -> None:
    """The service (a TestClient) reports ``version`` and answers a forecast with it."""
    assert client.get("/v1/model").json()["version"] == version
    forecast = client.post("/v1/forecast", json={"entity_id": "site_0"})
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["model_version"] == version


def a_plan(config: Path, **values: Any) -> Any:
    """A retraining run's plan for the dataset config at ``config`` (what the DAG's first task makes)."""
    from orchestration.plan import RunPlan

    defaults: dict[str, Any] = {
        "dataset_name": "synthetic",
        "logical_date": date(2024, 3, 31),
        "dag_run_id": "manual__2024-03-31",
        "horizon": 6,
    }
    return RunPlan(dataset_config=str(config), **{**defaults, **values})


def with_resolved_arguments(task: Any, argv: list[str]) -> Any:
    """A training task whose arguments come from an upstream task (an XComArg), as Airflow resolves
    it at run time: ``argv`` in their place."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    if isinstance(getattr(task, "arguments", None), XComArg):
        task.arguments = argv
    else:
        task.op_args = [argv]
    return task


def without_age(forecast: dict[str, Any]) -> dict[str, Any]:
    """A forecast body without the features' age, which grows between two requests."""
    return {k: v for k, v in forecast.items() if k != "feature_age_seconds"}


class PlatformEnv:
    """MLOPS_* variables for a test, applied to os.environ (and undone) with the settings cache cleared
    and MLflow pointed at the test's registry, as an entrypoint of the platform does."""

    def __init__(self, root: Path, drift_reports: int = 0, **extra: str):
        self.root = root
        self.datasets = root / "datasets"
        self.config = write_dataset(self.datasets, drift_reports=drift_reports)
        self.home = root / "home"
        self.values = {
            "MLOPS_HOME": str(self.home),
            "MLOPS_DATASETS_DIR": str(self.datasets),
            "MLOPS_DATASET_CONFIG": str(self.config),
            **extra,
        }
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> PlatformEnv:
        from core.settings import get_settings
        from model_registry import tracking

        for key in [k for k in os.environ if k.startswith("MLOPS_")]:
            self._saved[key] = os.environ.pop(key)
        for key, value in self.values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        get_settings.cache_clear()
        tracking.configure(get_settings())
        return self

    def __exit__(self, *exc: object) -> None:
        from core.settings import get_settings

        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()

    def settings(self) -> Settings:
        from core.settings import get_settings

        return get_settings()

    def dag(self, dag_id: str):  # type: ignore[no-untyped-def]
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
        assert bag.import_errors == {}
        return bag.get_dag(dag_id)
