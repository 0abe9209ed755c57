"""Nightly backtest of each dataset's champion (and a newer challenger) on the most recent data.

One MLflow run per model with per-fold metrics; the figures go to the Prometheus Pushgateway; the
run fails with a clear message when the champion's error grows past the configured ratio of the
backtest error it was registered with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from configs.orchestration import dag_arguments, dags_for_each_dataset
from configs.settings import get_settings


def build(name: str, config: Path) -> Any:
    @dag(
        **dag_arguments(
            f"nightly_backtest_{name}",
            "0 2 * * *",
            ["monitoring", "backtest", name],
            f"Rolling-origin backtest of the `{name}` champion on the newest validated data. Config: `{config}`.",
        )
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


globals().update(dags_for_each_dataset(build))
