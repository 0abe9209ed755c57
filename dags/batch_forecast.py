"""Batch forecasts of each dataset: ``forecast_<dataset>``, run by each new day of data.

When the daily data DAG loaded a day (Asset ``<name>_online_features``), the champion forecasts every
entity from that day's newest features, and the forecasts go to the forecast table (a re-run of a day
replaces its rows). Emits ``<name>_forecasts`` with the day, for what scores forecasts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

from forecast_store.outcomes import IssuedForecasts
from orchestration import assets
from orchestration.dags import dag_arguments, dags_for_each_dataset
from orchestration.plan import scope


def build(name: str, config: Path) -> Any:
    online, issued = assets.online_features(name), assets.forecasts(name)

    @dag(
        **dag_arguments(
            f"forecast_{name}",
            [online],
            ["forecast", "daily", name],
            f"The `{name}` champion forecasts every entity from each new day's features (Asset "
            f"`{name}_online_features`; by hand: the newest validated day); the forecasts go to the forecast "
            f"table, a day's rows replaced on a re-run. Config: `{config}`.",
        )
    )
    def batch_forecast() -> None:
        @task(outlets=[issued])
        def issue_forecasts() -> list[IssuedForecasts]:
            """Forecast every entity for each new day, oldest first, and store the day's forecasts."""
            from core.partitions import latest_validated_date
            from model_serving.batch import issue_day

            context = get_current_context()
            run = scope(config)
            days = assets.triggering_days(context, online) or [latest_validated_date(run.settings, run.dataset)]
            made = [issue_day(run.settings, run.dataset, day, context["dag_run"].run_id) for day in days]
            assets.record_day(context, issued, days[-1])
            return made

        issue_forecasts()

    return batch_forecast()


globals().update(dags_for_each_dataset(build))
