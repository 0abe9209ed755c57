"""Backtest of each dataset's champion (and a newer challenger), run by each new day of data.

The registered models are scored on the newest folds up to the day the daily data DAG just loaded
(Asset ``<name>_online_features``). One MLflow run per model with per-fold metrics; the figures go to
the Prometheus Pushgateway; the run fails with a clear message when the champion's error grows past
the configured ratio of the backtest error it was registered with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

from monitoring.outcomes import ModelBacktest
from orchestration import assets
from orchestration.dags import dag_arguments, dags_for_each_dataset
from orchestration.plan import scope


def build(name: str, config: Path) -> Any:
    online = assets.online_features(name)

    @dag(
        **dag_arguments(
            f"nightly_backtest_{name}",
            [online],
            ["monitoring", "backtest", name],
            f"Rolling-origin backtest of the `{name}` champion up to each new day of data (Asset "
            f"`{name}_online_features`; by hand: the newest validated day). Config: `{config}`.",
        )
    )
    def nightly_backtest() -> None:
        @task
        def backtest() -> list[ModelBacktest]:
            """Score the champion (and a newer challenger) on the newest folds up to the newest day that
            started the run, without refitting them."""
            from monitoring.champion_backtest import backtest_latest

            run = scope(config)
            days = assets.triggering_days(get_current_context(), online)
            return backtest_latest(run.settings, run.dataset, days[-1] if days else None)

        @task
        def publish(results: list[ModelBacktest]) -> bool:
            """Push the scores and the allowed error ratio to the Pushgateway."""
            from monitoring.champion_backtest import publish

            run = scope(config)
            return publish(run.settings, run.dataset, results)

        @task(retries=0)
        def check_regression(results: list[ModelBacktest]) -> str:
            """Fail with a clear message when the champion's error passed the allowed ratio of its
            registered error. Not retried: the same scores fail the same way."""
            from monitoring.champion_backtest import check_regression

            return check_regression(scope(config).dataset, results)

        results = backtest()
        publish(results) >> check_regression(results)

    return nightly_backtest()


globals().update(dags_for_each_dataset(build))
