"""Daily drift monitor of each dataset: the newest feature window against the champion's training
window (Evidently), with the figures pushed for Prometheus and Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from configs.orchestration import dag_arguments, dags_for_each_dataset
from configs.settings import get_settings


def build(name: str, config: Path) -> Any:
    @dag(
        **dag_arguments(
            f"drift_monitor_{name}",
            "@daily",
            ["monitoring", "drift", name],
            f"Evidently drift of the newest `{name}` features against the champion's training window.",
        )
    )
    def drift_monitor() -> None:
        @task
        def check_drift() -> dict[str, Any]:
            from configs.dataset import DatasetConfig
            from model_validation.drift import monitor_champion

            return monitor_champion(get_settings(), DatasetConfig.from_yaml(config)).as_dict()

        check_drift()

    return drift_monitor()


globals().update(dags_for_each_dataset(build))
