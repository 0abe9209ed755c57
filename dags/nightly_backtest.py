"""Nightly backtest of each dataset's champion (and a newer challenger) on the most recent data.

One MLflow run per model with per-fold metrics; the figures go to the Prometheus Pushgateway; the
run fails with a clear message when the champion's error grows past the configured ratio of the
backtest error it was registered with.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from configs.orchestration import DEFAULT_ARGS, discover_datasets
from configs.settings import get_settings


def build(name: str, config: Path) -> Any:
    @dag(
        dag_id=f"nightly_backtest_{name}",
        schedule="0 2 * * *",
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["monitoring", "backtest", name],
        doc_md=f"Rolling-origin backtest of the `{name}` champion on the newest validated data. Config: `{config}`.",
    )
    def nightly_backtest() -> None:
        @task
        def backtest() -> list[dict[str, Any]]:
            from configs.dataset import DatasetConfig
            from model_validation.backtest_champion import backtest_latest

            return [r.as_dict() for r in backtest_latest(get_settings(), DatasetConfig.from_yaml(config))]

        @task
        def publish(results: list[dict[str, Any]]) -> bool:
            from configs.dataset import DatasetConfig
            from model_validation.backtest_champion import publish_dicts

            return publish_dicts(get_settings(), DatasetConfig.from_yaml(config), results)

        @task(retries=0)
        def check_regression(results: list[dict[str, Any]]) -> str:
            from configs.dataset import DatasetConfig
            from model_validation.backtest_champion import check_regression_dicts

            return check_regression_dicts(DatasetConfig.from_yaml(config), results)

        results = backtest()
        publish(results) >> check_regression(results)

    return nightly_backtest()


for _name, _config in discover_datasets(get_settings().datasets_dir).items():
    globals()[f"nightly_backtest_{_name}"] = build(_name, _config)
