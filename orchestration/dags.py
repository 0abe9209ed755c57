"""What every DAG shares: default task arguments, the dataset configs DAGs are made for, and the
typed values its tasks hand each other.

Kept free of heavy imports: DAG files import this at parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from core.dataset import DailyConfig
from core.settings import Settings, get_settings
from data_pipeline.outcomes import Landed, ValidationOutcome
from feature_drift.outcomes import DriftResult
from feature_store.outcomes import Materialized, OfflineFeatures, TrainingSet
from forecast_store.outcomes import IssuedForecasts
from model_registry.outcomes import AliasMove, RegisteredVersion
from model_validation.outcomes import GateDecision, RunSummary
from monitoring.outcomes import ModelBacktest, MonitorOutcome, ScoredForecasts
from orchestration.plan import RunPlan

OWNER = "ml-platform"
# What tasks return to each other (pydantic models: nested values keep their types over XCom).
TASK_RESULTS = (
    RunPlan, Landed, ValidationOutcome, OfflineFeatures, Materialized, TrainingSet, RegisteredVersion,
    GateDecision, DriftResult, RunSummary, AliasMove, MonitorOutcome, ModelBacktest, IssuedForecasts, ScoredForecasts,
)  # fmt: skip


def prepare_task(context: Any) -> None:
    """Before a task runs, the task's entrypoint setup:

    * Airflow masks the platform's credentials (``***``) wherever the task's log would show them,
      e.g. a library's error message with a database URL. Airflow knows its own connections'
      secrets, not the ones that come in ``MLOPS_*`` variables.
    * MLflow is pointed at the settings' registry, once, for every library call of the task.
    """
    from airflow.sdk.log import mask_secret

    from model_registry import tracking

    settings = get_settings()
    for value in settings.secret_values():
        mask_secret(value)
    tracking.configure(settings)


def allow_task_results() -> None:
    """Let Airflow read back the typed values tasks return: XCom deserializes only allowed classes."""
    from airflow.sdk import serde

    for result in TASK_RESULTS:
        serde.allow_class(result)


def default_args(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The task arguments every DAG starts from: I/O-bound tasks (files, S3, registry, online store)
    retry with exponential backoff from the settings' delay."""
    return {
        "on_execute_callback": prepare_task,
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=settings.task_retry_delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=30),
        **overrides,
    }


# Compute-bound steps do not get better by retrying quickly.
TRAINING_ARGS: dict[str, Any] = {"retries": 1, "execution_timeout": timedelta(hours=6)}
# JSON-schema pattern of a form's free text: it ends up in task logs and registry tags, so one line
# without control characters, which could forge log lines or terminal output. Python's ``$`` also
# matches before a final newline: ``(?![\s\S])`` is the end of the text in Python and in the browser.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*(?![\s\S])"


def discover_datasets(directory: Path) -> dict[str, Path]:
    """Dataset name -> config path for every YAML file in ``directory`` (only the name is read)."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            found[data["name"]] = path.resolve()
    return found


def daily_config(config: Path) -> DailyConfig:
    """The ``daily`` section of a dataset config, read alone: the rest of the config is checked when a
    task loads it, so one bad config cannot keep the other datasets' DAGs from parsing."""
    data = yaml.safe_load(config.read_text())
    return DailyConfig.model_validate(data.get("daily") or {})


def dag_arguments(dag_id: str, schedule: Any, tags: list[str], doc_md: str, **overrides: Any) -> dict[str, Any]:
    """What every DAG of the platform shares: one active run, no catch-up, the default task arguments."""
    return {
        "dag_id": dag_id,
        "schedule": schedule,
        "start_date": datetime(2024, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(get_settings()),
        "tags": tags,
        "doc_md": doc_md,
        **overrides,
    }


def dags_for_each_dataset(build: Callable[[str, Path], Any]) -> dict[str, Any]:
    """``build(name, config)`` for every dataset config; keyed by dag_id for a DAG file's globals()."""
    allow_task_results()
    dags = (build(name, config) for name, config in discover_datasets(get_settings().datasets_dir).items())
    return {dag.dag_id: dag for dag in dags}
