"""Drift monitor of each dataset, run by each new day of data: the day's materialized features against
the champion's evidence (Evidently, per entity), figures pushed for Prometheus and Grafana, and the
retraining DAG triggered when drift stays above the threshold for N consecutive days of new data."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

from monitoring.outcomes import MonitorOutcome
from orchestration import assets
from orchestration.dags import dag_arguments, dags_for_each_dataset, daily_config
from orchestration.plan import scope

DOC = """
### Drift monitor of {name}

Runs when `ingest_{name}` loaded a day into the online store (Asset `{name}_online_features`), once
per new day, in order (several days folded into one run are checked one after the other).

check_drift (Evidently: per entity, the newest `drift_window` up to the day against the newest rows
the champion was fit on before it; one MLflow run per check date;
figures to the Pushgateway) -> needs_retraining
(drift share above `max_drift_share` on `drift_consecutive_checks` days of new data in a row; a check
whose day was judged already is recorded as `no_new_data` and not counted; too little data is never
drift) -> trigger `retrain_{name}_forecaster` with the reason -> record the trigger (the streak restarts).
A run started by hand checks its logical date against the newest validated day.
Config: `{config}`.
"""


def build(name: str, config: Path) -> Any:
    online = assets.online_features(name)

    @dag(
        **dag_arguments(
            f"drift_monitor_{name}",
            [online],
            ["monitoring", "drift", name],
            DOC.format(name=name, config=config),
            # A check started by hand may judge any day the daily loop covers (a run dated before a
            # DAG's start date runs no task).
            start_date=datetime.combine(daily_config(config).start, time(), tzinfo=UTC),
        )
    )
    def drift_monitor() -> None:
        @task
        def check_drift() -> MonitorOutcome:
            """Judge each new day's features against the champion's evidence, per entity; record
            each check (one MLflow run per check date) and push its figures; count the drifted streak."""
            from monitoring.champion_drift import check_champion

            context = get_current_context()
            run = scope(config)
            days = assets.triggering_days(context, online)
            if not days:  # started by hand: its logical date, on the newest validated day
                dag_run = context["dag_run"]
                return check_champion(run.settings, run.dataset, (dag_run.logical_date or dag_run.run_after).date())
            outcomes = [check_champion(run.settings, run.dataset, day, data_date=day) for day in days]
            return outcomes[-1]

        @task.short_circuit
        def needs_retraining(outcome: MonitorOutcome) -> bool:
            """Go on to the trigger only when the streak reached the dataset's number of checks."""
            return outcome.trigger

        trigger = TriggerDagRunOperator(
            task_id="trigger_retraining",
            trigger_dag_id=f"retrain_{name}_forecaster",
            trigger_run_id="drift__{{ ti.xcom_pull(task_ids='check_drift').check_date }}",
            conf={
                "reason": "{{ ti.xcom_pull(task_ids='check_drift').trigger_reason }}",
                "training_window_end": "{{ ti.xcom_pull(task_ids='check_drift').data_date }}",
                "holdout_start": "{{ ti.xcom_pull(task_ids='check_drift').streak_start }}",
            },
            skip_when_already_exists=True,
            doc_md="Start the dataset's retraining with the streak's reason, the data date as the training window's "
            "end and the streak's first day as the start of its holdout (the gate compares on the data after the "
            "change); a retried check finds the run it started and starts no second one.",
        )

        @task
        def record_trigger(outcome: MonitorOutcome) -> str:
            """Tag the check that started a retraining, so that the next streak starts after it."""
            from monitoring.champion_drift import mark_triggered

            run_id = f"drift__{outcome.check_date}"
            mark_triggered(scope(config).settings, outcome.check_run_id, run_id)
            return run_id

        outcome = check_drift()
        needs_retraining(outcome) >> trigger >> record_trigger(outcome)

    return drift_monitor()


globals().update(dags_for_each_dataset(build))
