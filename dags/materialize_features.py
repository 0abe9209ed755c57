"""Hourly materialization of each dataset's features into the online store.

Feast keeps no schedule of its own: this DAG passes each run's data interval end explicitly, so a
re-run of the same hour loads the same interval again (idempotent), and catching up is explicit.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

from core.settings import get_settings
from feature_store.outcomes import Materialized
from orchestration.dags import dag_arguments, dags_for_each_dataset, default_args
from orchestration.plan import scope


def build(name: str, config: Path) -> Any:
    @dag(
        **dag_arguments(
            f"materialize_{name}_features",
            "@hourly",
            ["features", name],
            f"Load `{name}` features up to the end of each hour into the online store. Config: `{config}`.",
            default_args=default_args(get_settings(), execution_timeout=timedelta(minutes=20)),
        )
    )
    def materialize_features() -> None:
        @task
        def materialize() -> Materialized:
            """Load each entity's newest features (the feature view's TTL window) before the end of the
            run's interval into the online store."""
            from feature_store.repo import materialize

            context = get_current_context()
            run = scope(config)
            return materialize(run.settings, run.dataset, context["data_interval_end"] or context["dag_run"].run_after)

        materialize()

    return materialize_features()


globals().update(dags_for_each_dataset(build))
