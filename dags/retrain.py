"""Retraining DAGs, one per dataset config: ``retrain_<dataset>_forecaster``.

Triggered from the UI form or the REST API, never on a schedule. Every task calls one library
function; heavy libraries are imported inside task bodies only, so this file parses in a blink.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from configs.orchestration import NO_CONTROL_CHARACTERS, TRAINING_ARGS, dag_arguments, dags_for_each_dataset
from configs.settings import get_settings
from model_training.launch import mapped_training_operator, training_operator

# The trainable families of model_training.forecasters (that module is not imported at parse time).
FAMILIES = ["xgboost", "lightgbm", "nlinear", "dlinear"]

DOC = """
### Retrain the {name} forecaster

ingest -> validate (Great Expectations) -> features -> Feast apply + materialize -> training set
-> tune (Optuna workers sharing one study) -> best parameters
-> train final (pod on the GPU pool, or a local process) -> register challenger
-> champion/challenger gate (both models on the same holdout) -> drift gate (Evidently, per entity)
-> promote (atomic alias move; the old champion keeps alias `previous`) or skip -> summary.

`force_promote` overrides the drift gate only (the override and the reason are recorded on the
version), never a model that loses to the champion or to seasonal naive. Roll back with the
`rollback_{name}_champion` DAG or `python -m model_registry rollback`.

A failed data check stops the run before any feature is written; the champion keeps serving.
Re-running a task of the same run reuses its outputs (partitions are replaced, the registry
version of a training run is reused, promotion of the current champion is a no-op).
Config: `{config}`.
"""


def _xcom(task_id: str, key: str | None = None) -> str:
    """A Jinja template pulling a task's return value (or one key of it) at run time."""
    item = f"['{key}']" if key else ""
    return "{{ ti.xcom_pull(task_ids='" + task_id + "')" + item + " }}"


def build(name: str, config: Path) -> Any:
    settings = get_settings()

    @dag(
        **dag_arguments(f"retrain_{name}_forecaster", None, ["training", name], DOC.format(name=name, config=config)),
        params={
            "model_family": Param("xgboost", type="string", enum=FAMILIES, title="Model family"),
            "horizon": Param(
                None, type=["null", "integer"], minimum=1, maximum=10000, title="Horizon (steps; empty: config's)"
            ),
            "n_trials": Param(5, type="integer", minimum=0, maximum=500, title="Optuna trials (0: no tuning)"),
            "tuning_workers": Param(
                1, type="integer", minimum=1, maximum=16, title="Tuning workers (processes or pods on one study)"
            ),
            "training_window_end": Param(
                None,
                type=["null", "string"],
                format="date",
                title="Training window end (YYYY-MM-DD; empty: the run's date)",
            ),
            "force_promote": Param(False, type="boolean", title="Promote despite the drift gate"),
            "reason": Param(
                "", type="string", maxLength=500, pattern=NO_CONTROL_CHARACTERS, title="Why this run (recorded)"
            ),
        },
        render_template_as_native_obj=False,
    )
    def retrain() -> None:
        @task
        def plan() -> dict[str, Any]:
            from configs.dataset import DatasetConfig
            from configs.run_plan import RunPlan

            context = get_current_context()
            params, dag_run = context["params"], context["dag_run"]
            end = params.get("training_window_end")
            logical_date = (
                datetime.fromisoformat(end).date() if end else (dag_run.logical_date or dag_run.run_after).date()
            )
            # The whole source policy, here at the run's first task: a config naming a forbidden source
            # stops the run before anything is read or written.
            dataset = DatasetConfig.from_yaml(config, get_settings())
            horizon = params.get("horizon") or dataset.horizon
            return RunPlan(
                dataset_config=str(config),
                logical_date=logical_date,
                dag_run_id=dag_run.run_id,
                family=params["model_family"],
                horizon=int(horizon),
                n_trials=int(params["n_trials"]),
                tuning_workers=int(params["tuning_workers"]),
                force_promote=bool(params["force_promote"]),
                reason=str(params["reason"]),
            ).to_dict()

        @task
        def ingest(run: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from data_pipeline.ingest import ingest as land

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            return str(land(dataset, p.logical_date, settings))

        @task(retries=0)
        def validate(run: dict[str, Any]) -> dict[str, Any]:
            from configs.run_plan import RunPlan
            from data_pipeline.validation import validate as check

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            outcome = check(dataset, p.logical_date, settings)
            return {"success": outcome.success, "evaluated": outcome.evaluated, "result": str(outcome.result_path)}

        @task
        def build_features(run: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from feature_store.features import write_offline_source

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            return str(write_offline_source(settings, dataset, p.logical_date))

        @task
        def feast_apply_materialize(run: dict[str, Any]) -> list[str]:
            from configs.run_plan import RunPlan
            from data_pipeline.landing import end_of
            from feature_store.repo import apply_and_materialize

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            return [t.isoformat() for t in apply_and_materialize(settings, dataset, end_of(p.logical_date))]

        @task
        def training_set(run: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from feature_store.training_set import write_training_set

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            path = p.run_dir(settings, dataset) / "training_set.parquet"
            return str(write_training_set(settings, dataset, p.logical_date, path))

        @task
        def tuning_commands(run: dict[str, Any], training_set_path: str) -> list[list[str]]:
            from configs.run_plan import RunPlan

            return RunPlan.from_dict(run).tuning_commands(training_set_path)

        @task
        def best_params(run: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from model_training.tuning import write_best_params

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            out = p.run_dir(settings, dataset) / "params.json"
            return str(write_best_params(settings, dataset, p.family, p.study(dataset), out, p.n_trials))

        train_argv = [
            "train",
            "--dataset", _xcom("plan", "dataset_config"),
            "--logical-date", _xcom("plan", "logical_date"),
            "--model", _xcom("plan", "family"),
            "--horizon", _xcom("plan", "horizon"),
            "--params-file", _xcom("best_params"),
            "--training-set", _xcom("training_set"),
            "--study", _xcom("plan", "study"),
            "--tag", "dag_run_id={{ run_id }}",
        ]  # fmt: skip
        train_final = training_operator("train_final", settings, train_argv, **TRAINING_ARGS)

        @task
        def register_challenger(run: dict[str, Any], checked: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from model_registry.registry import register_run_of

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            lineage = {
                "ge_result": f"{'passed' if checked['success'] else 'failed'}: {checked['evaluated']} expectations",
                "ge_result_path": checked["result"],
            }
            model_name = settings.model_name(dataset.name)
            return register_run_of(settings, model_name, "dag_run_id", p.dag_run_id, lineage).version

        @task
        def champion_gate(run: dict[str, Any], version: str, training_set_path: str) -> dict[str, Any]:
            import pandas as pd

            from configs.run_plan import RunPlan
            from feature_store.training_set import holdout_path
            from model_validation.champion import evaluate_challenger

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            holdout = pd.read_parquet(holdout_path(Path(training_set_path)))
            return evaluate_challenger(settings, dataset, settings.model_name(dataset.name), version, holdout).as_dict()

        @task
        def drift_gate(run: dict[str, Any], version: str, training_set_path: str) -> dict[str, Any]:
            from configs.run_plan import RunPlan
            from model_validation.drift import gate_version

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            return gate_version(settings, dataset, p, version, Path(training_set_path)).as_dict()

        @task.branch
        def decide(champion: dict[str, Any], drift: dict[str, Any]) -> str:
            from model_validation.decision import promotion_allowed

            return "promote" if promotion_allowed(champion, drift) else "skip_promotion"

        @task
        def promote(run: dict[str, Any], version: str, champion: dict[str, Any], drift: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from model_registry.promotion import promote_version
            from model_validation.decision import record_decision

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            reason = f"{champion['reason']}; {drift['reason']}"
            model_name = settings.model_name(dataset.name)
            # Refused if another run moved the champion after this run's gate compared against it.
            promote_version(settings, model_name, version, reason, expected_champion=champion["champion_version"])
            record_decision(settings, model_name, version, True, reason)
            return version

        @task
        def skip_promotion(run: dict[str, Any], version: str, champion: dict[str, Any], drift: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from model_validation.decision import explain_skip, record_decision

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            reason = explain_skip(champion, drift)
            record_decision(settings, settings.model_name(dataset.name), version, False, reason)
            return reason

        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def summary(run: dict[str, Any], version: str, champion: dict[str, Any], drift: dict[str, Any]) -> str:
            from configs.run_plan import RunPlan
            from model_validation.decision import run_summary

            p = RunPlan.from_dict(run)
            settings, dataset = p.load()
            return run_summary(settings, settings.model_name(dataset.name), p, version, champion, drift)

        run = plan()
        features = build_features(run)
        checked = validate(run)
        ingest(run) >> checked >> features
        materialized = feast_apply_materialize(run)
        features >> materialized
        rows = training_set(run)
        materialized >> rows
        workers = mapped_training_operator("tune", settings, tuning_commands(run, rows), **TRAINING_ARGS)
        workers >> best_params(run) >> train_final
        version = register_challenger(run, checked)
        train_final >> version
        champion = champion_gate(run, version, rows)
        drift = drift_gate(run, version, rows)
        branch = decide(champion, drift)
        (
            branch
            >> [promote(run, version, champion, drift), skip_promotion(run, version, champion, drift)]
            >> summary(run, version, champion, drift)
        )

    return retrain()


globals().update(dags_for_each_dataset(build))
