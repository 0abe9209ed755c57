"""Daily drift monitor of each dataset: the newest materialized features against the champion's
training window (Evidently, per entity), figures pushed for Prometheus and Grafana, and the
retraining DAG triggered when drift stays above the threshold for N consecutive checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

from configs.orchestration import dag_arguments, dags_for_each_dataset
from configs.settings import get_settings

DOC = """
### Drift monitor of {name}

check_drift (Evidently: per entity, newest `drift_window` against the champion's training window;
one MLflow run per check date; figures to the Pushgateway) -> needs_retraining (drift share above
`max_drift_share` in `drift_consecutive_checks` checks in a row; too little data is never drift)
-> trigger `retrain_{name}_forecaster` with the reason -> record the trigger (the streak restarts).
Config: `{config}`.
"""


def build(name: str, config: Path) -> Any:
    @dag(
        **dag_arguments(
            f"drift_monitor_{name}", "@daily", ["monitoring", "drift", name], DOC.format(name=name, config=config)
        )
    )
    def drift_monitor() -> None:
        @task
        def check_drift() -> dict[str, Any]:
            from configs.dataset import DatasetConfig
            from model_validation.drift_monitor import check_champion

            context = get_current_context()
            dag_run = context["dag_run"]
            check_date = (dag_run.logical_date or dag_run.run_after).date()
            return check_champion(get_settings(), DatasetConfig.from_yaml(config), check_date).as_dict()

        @task.short_circuit
        def needs_retraining(outcome: dict[str, Any]) -> bool:
            return bool(outcome["trigger"])

        trigger = TriggerDagRunOperator(
            task_id="trigger_retraining",
            trigger_dag_id=f"retrain_{name}_forecaster",
            trigger_run_id="drift__{{ ti.xcom_pull(task_ids='check_drift')['check_date'] }}",
            conf={
                "reason": "{{ ti.xcom_pull(task_ids='check_drift')['trigger_reason'] }}",
                "training_window_end": "{{ ti.xcom_pull(task_ids='check_drift')['data_date'] }}",
            },
            skip_when_already_exists=True,
        )

        @task
        def record_trigger(outcome: dict[str, Any]) -> str:
            from model_validation.drift_monitor import mark_triggered

            run_id = f"drift__{outcome['check_date']}"
            mark_triggered(get_settings(), outcome["check_run_id"], run_id)
            return run_id

        outcome = check_drift()
        needs_retraining(outcome) >> trigger >> record_trigger(outcome)

    return drift_monitor()


globals().update(dags_for_each_dataset(build))
