"""Realized accuracy of each dataset: ``score_<dataset>``, run after each day's batch forecast.

When ``forecast_<name>`` stored a day's forecasts (Asset ``<name>_forecasts``), that day's validated
data holds the actuals of the forecasts issued before it: every stored forecast whose target it
covers is scored (error, and seasonal naive's on the same target), once; the day's figures go to the
Pushgateway and to the MLflow run of each model version that issued them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

from monitoring.outcomes import ScoredForecasts
from orchestration import assets
from orchestration.dags import dag_arguments, dags_for_each_dataset
from orchestration.plan import scope


def build(name: str, config: Path) -> Any:
    issued = assets.forecasts(name)

    @dag(
        **dag_arguments(
            f"score_{name}",
            [issued],
            ["forecast", "daily", "monitoring", name],
            f"Scores `{name}`'s stored forecasts whose targets each new day's data holds (Asset `{name}_forecasts`; "
            f"by hand: the newest validated day): error per step, entity and model version, and seasonal naive's "
            f"on the same targets; each forecast scored once, a re-run replaces its day's scores. Figures to the "
            f"Pushgateway and to each version's MLflow run. Config: `{config}`.",
        )
    )
    def score_forecasts() -> None:
        @task
        def score() -> list[ScoredForecasts]:
            """Score each new day's due forecasts against its actuals, oldest day first."""
            from core.partitions import latest_validated_date
            from monitoring.forecast_scoring import score_day

            context = get_current_context()
            run = scope(config)
            days = assets.triggering_days(context, issued) or [latest_validated_date(run.settings, run.dataset)]
            return [score_day(run.settings, run.dataset, day, context["dag_run"].run_id) for day in days]

        @task
        def publish(days: list[ScoredForecasts]) -> list[str]:
            """Push the newest day's figures and log each day's realized MAE on the versions' MLflow runs."""
            from monitoring import forecast_scoring

            run = scope(config)
            logged = [
                v for day in days for v in forecast_scoring.log_to_versions(run.settings, run.dataset, day.data_date)
            ]
            forecast_scoring.publish(run.settings, run.dataset, days[-1])
            return logged

        publish(score())

    return score_forecasts()


globals().update(dags_for_each_dataset(build))
