"""Hourly incremental materialization of each dataset's features into the online store.

Feast keeps no schedule of its own: this DAG passes each run's data interval end explicitly, so a
re-run of the same hour loads the same interval again (idempotent), and catching up is explicit.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

from configs.orchestration import DEFAULT_ARGS, dag_arguments, dags_for_each_dataset
from configs.settings import get_settings


def build(name: str, config: Path) -> Any:
    @dag(
        **dag_arguments(
            f"materialize_{name}_features",
            "@hourly",
            ["features", name],
            f"Load `{name}` features up to the end of each hour into the online store. Config: `{config}`.",
            default_args={**DEFAULT_ARGS, "execution_timeout": timedelta(minutes=20)},
        )
    )
    def materialize_features() -> None:
        @task
        def materialize() -> list[str]:
            from configs.dataset import DatasetConfig
            from feature_store.repo import materialize as load_online

            context = get_current_context()
            end = context["data_interval_end"] or context["dag_run"].run_after
            start, stop = load_online(get_settings(), DatasetConfig.from_yaml(config), end)
            return [start.isoformat(), stop.isoformat()]

        materialize()

    return materialize_features()


globals().update(dags_for_each_dataset(build))
