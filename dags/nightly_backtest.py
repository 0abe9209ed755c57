"""Nightly backtest of each dataset's champion (and a newer challenger) on the most recent data.

One MLflow run per model with per-fold metrics; the figures go to the Prometheus Pushgateway; the
run fails with a clear message when the champion's error grows past the configured ratio of the
backtest error it was registered with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from model_validation.outcomes import ModelBacktest
from orchestration.dags import dag_arguments, dags_for_each_dataset
from orchestration.plan import scope


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
        def backtest() -> list[ModelBacktest]:
            """Score the champion (and a newer challenger) on the newest folds, without refitting them."""
            from model_validation.backtest_champion import backtest_latest

            run = scope(config)
            return backtest_latest(run.settings, run.dataset)

        @task
        def publish(results: list[ModelBacktest]) -> bool:
            """Push the scores and the allowed error ratio to the Pushgateway."""
            from model_validation.backtest_champion import publish

            run = scope(config)
            return publish(run.settings, run.dataset, results)

        @task(retries=0)
        def check_regression(results: list[ModelBacktest]) -> str:
            """Fail with a clear message when the champion's error passed the allowed ratio of its
            registered error. Not retried: the same scores fail the same way."""
            from model_validation.backtest_champion import check_regression

            return check_regression(scope(config).dataset, results)

        results = backtest()
        publish(results) >> check_regression(results)

    return nightly_backtest()


globals().update(dags_for_each_dataset(build))
