"""Daily drift monitor of each dataset: the newest feature window against the champion's training
window (Evidently), with the figures pushed for Prometheus and Grafana."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from configs.orchestration import DEFAULT_ARGS, discover_datasets
from configs.settings import get_settings


def build(name: str, config: Path) -> Any:
    @dag(
        dag_id=f"drift_monitor_{name}",
        schedule="@daily",
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["monitoring", "drift", name],
        doc_md=f"Evidently drift of the newest `{name}` features against the champion's training window.",
    )
    def drift_monitor() -> None:
        @task
        def check_drift() -> dict[str, Any]:
            from configs.dataset import DatasetConfig
            from model_validation.drift import monitor_champion

            return monitor_champion(get_settings(), DatasetConfig.from_yaml(config)).as_dict()

        check_drift()

    return drift_monitor()


for _name, _config in discover_datasets(get_settings().datasets_dir).items():
    globals()[f"drift_monitor_{_name}"] = build(_name, _config)
