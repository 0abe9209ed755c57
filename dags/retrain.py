"""Retraining DAGs, one per dataset config: ``retrain_<dataset>_forecaster``.

Triggered from the UI form or the REST API, never on a schedule. Every task calls one library
function and returns what it made as a typed value, which the tasks after it take as arguments;
heavy libraries are imported inside task bodies only, so this file parses in a blink. The tasks are
defined once, here; each dataset's DAG (:func:`build`) wires them. The trigger form and how its
values become the run's plan are in :mod:`orchestration.retrain_form`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import TriggerRule, dag, get_current_context, task

from core.settings import get_settings
from data_pipeline.outcomes import Landed, ValidationOutcome
from feature_drift.outcomes import DriftResult
from feature_store.outcomes import Materialized, OfflineFeatures, TrainingSet
from model_registry.outcomes import RegisteredVersion
from model_validation.outcomes import GateDecision, RunSummary
from orchestration.dags import (
    TRAINING_ARGS,
    dag_arguments,
    dags_for_each_dataset,
    daily_config,
)
from orchestration.launch import mapped_training_operator, training_operator
from orchestration.plan import RunPlan
from orchestration.retrain_form import form, plan_from_form

DOC = """
### Retrain the {name} forecaster

ingest -> validate (Great Expectations) -> features -> Feast apply + materialize -> training set
-> tune (Optuna workers sharing one study) -> best parameters
-> for the selection family, one candidate evaluation per candidate (mapped: a pod each)
-> train final (pod on the GPU pool, or a local process; with `training.refit` it also fits the same model
on every labelled row) -> register challenger
-> champion/challenger gate (both models on the same holdout; a run the drift monitor started holds out
the data since the change began) -> drift gate (Evidently, per entity: the challenger's newest training
week and holdout against the newest data)
-> register the refit as the version to serve (the gates judged the fit that never saw the holdout)
-> promote (atomic alias move; the old champion keeps alias `previous`) or skip -> summary.

`force_promote` overrides the drift gate only (the override and the reason are recorded on the
version), never a model that loses to the champion or to a baseline. Roll back with the
`rollback_{name}_champion` DAG or `python -m model_registry rollback`.

A failed data check stops the run before any feature is written; the champion keeps serving.
Re-running a task of the same run reuses its outputs (partitions are replaced, the registry
version of a training run is reused, promotion of the current champion is a no-op).
Config: `{config}`.
"""


@task
def plan(config: str) -> RunPlan:
    """Turn the form into the run's plan: dataset, data date, family, horizon, tuning, reason.

    The whole source policy applies here, at the run's first task: a config that names a
    forbidden source stops the run before anything is read or written.
    """
    context = get_current_context()
    dag_run = context["dag_run"]
    run_date = (dag_run.logical_date or dag_run.run_after).date()
    return plan_from_form(config, context["params"], dag_run.run_id, run_date)


@task
def ingest(plan: RunPlan) -> Landed:
    """Land the source as known at the end of the data date, or reuse the day that the daily
    data DAG (``ingest_<name>``) already landed and checked."""
    from data_pipeline.ingest import already_landed, ingest

    run = plan.scope()
    reused = already_landed(run.dataset, plan.logical_date, run.settings)
    return reused or ingest(run.dataset, plan.logical_date, run.settings)


@task(retries=0)
def validate(plan: RunPlan, landed: Landed) -> ValidationOutcome:
    """Run the Great Expectations suite on the landed partition (or take the check the day already
    passed); only a passing one is published as validated. A failure names every failed
    expectation and stops the run: nothing downstream is written and the champion keeps
    serving. Not retried: the same data fails the same way."""
    from data_pipeline.validation import passed_check, validate

    run = plan.scope()
    passed = passed_check(run.dataset, landed.logical_date, run.settings)
    return passed or validate(run.dataset, landed.logical_date, run.settings)


@task
def build_features(plan: RunPlan, checked: ValidationOutcome) -> OfflineFeatures:
    """Build the features of the validated partition into Feast's offline source, unless it
    already holds them: built from this day or a later one (every day's partition holds all
    rows known at its end)."""
    from feature_store.build import write_offline_source
    from feature_store.features import offline_source

    run = plan.scope()
    built = offline_source(run.settings, run.dataset)
    if built is not None and built.logical_date >= plan.logical_date:
        return built
    return write_offline_source(run.settings, run.dataset, plan.logical_date)


@task
def materialize(plan: RunPlan, features: OfflineFeatures) -> Materialized:
    """Register the Feast definitions and load the newest features into the online store."""
    from core.windows import end_of
    from feature_store.repo import apply_and_materialize

    run = plan.scope()
    return apply_and_materialize(run.settings, run.dataset, end_of(plan.logical_date))


@task
def training_set(plan: RunPlan, materialized: Materialized) -> TrainingSet:
    """Join labels with features point-in-time (Feast) and keep the newest span out as the holdout
    that the champion/challenger gate scores (from ``holdout_start`` when the drift monitor gave
    one: the data after the change); written once, read by every later step."""
    from feature_store.training_set import write_training_set

    run = plan.scope()
    location = plan.location(run.settings, run.dataset, "training_set.parquet")
    return write_training_set(run.settings, run.dataset, plan.logical_date, location, plan.holdout_start)


@task
def tuning_commands(plan: RunPlan, rows: TrainingSet) -> list[list[str]]:
    """One training-CLI command per tuning worker, all on the run's one Optuna study; the dataset
    config goes where the workers read it (object storage when they share no filesystem)."""
    run = plan.scope()
    return plan.tuning_commands(rows.location, plan.published_dataset(run.settings, run.dataset))


@task
def best_params(plan: RunPlan) -> str:
    """Write the study's best parameters over the config's (the config's alone without tuning).
    Fails when trials were asked for and none completed: the workers died, quietly or not."""
    from model_training.tuning import write_best_params

    run = plan.scope()
    out = plan.location(run.settings, run.dataset, "params.json")
    return write_best_params(run.settings, run.dataset, plan.family, plan.study, out, plan.n_trials)


@task
def candidate_commands(plan: RunPlan, rows: TrainingSet) -> list[list[str]]:
    """For the ``selection`` family, one training-CLI command per candidate of the dataset's selection:
    each backtests its candidate on the run's folds and fits it (a pod each on Kubernetes); none for
    another family, whose candidate step is then skipped."""
    run = plan.scope()
    names = run.dataset.training.selection_with().candidates
    prefix = plan.candidates_prefix(run.settings, run.dataset)
    return plan.candidate_commands(rows.location, plan.published_dataset(run.settings, run.dataset), names, prefix)


@task
def train_command(plan: RunPlan, rows: TrainingSet, params_file: str) -> list[str]:
    """The final training's command: the best parameters on the whole training set, tagged with
    the DAG run so that registration finds the run it logged; a selection chooses among its
    candidates' evaluations; with ``training.refit``, the model is fitted again on every labelled row."""
    run = plan.scope()
    candidates = plan.candidates_prefix(run.settings, run.dataset)
    dataset = plan.published_dataset(run.settings, run.dataset)
    return plan.train_command(rows.location, params_file, dataset, candidates, rows.labelled_location)


@task
def register_challenger(plan: RunPlan, checked: ValidationOutcome) -> RegisteredVersion:
    """Register the run's checked training output as a version with alias ``challenger``; a retry
    returns the version registered first. The data check's result joins its lineage tags. No
    run to register is final (the training step ended without logging one): no retry waits."""
    from airflow.sdk.exceptions import AirflowFailException

    from model_registry.registry import register_run_of

    run = plan.scope()
    try:
        return register_run_of(run.settings, run.model_name, "dag_run_id", plan.dag_run_id, checked.lineage)
    except LookupError as missing:
        raise AirflowFailException(str(missing)) from missing


@task
def champion_gate(plan: RunPlan, challenger: RegisteredVersion, rows: TrainingSet) -> GateDecision:
    """Score challenger, champion and seasonal naive on the run's holdout; record the decision."""
    from core.objects import read_parquet
    from model_validation.champion import evaluate_challenger

    run = plan.scope()
    holdout = read_parquet(rows.holdout_location, run.settings)
    return evaluate_challenger(run.settings, run.dataset, run.model_name, challenger.version, holdout)


@task
def drift_gate(plan: RunPlan, challenger: RegisteredVersion, rows: TrainingSet) -> DriftResult:
    """Compare, per entity, the challenger's training rows with the newest window (Evidently)."""
    from model_validation.drift import gate_version

    run = plan.scope()
    out_dir = plan.run_dir(run.settings, run.dataset) / "drift"
    return gate_version(
        run.settings,
        run.dataset,
        challenger.version,
        plan.logical_date,
        rows.location,
        out_dir,
        force=plan.force_promote,
        forced_because=plan.reason,
    )


@task.branch
def decide(champion: GateDecision, drift: DriftResult) -> str:
    """Promote when both gates let the challenger through, else skip."""
    from model_validation.decision import promotion_allowed

    return "register_served" if promotion_allowed(champion, drift) else "skip_promotion"


@task
def register_served(plan: RunPlan, challenger: RegisteredVersion) -> RegisteredVersion:
    """The version to serve, now that the gates passed on the challenger: its training run's refit
    on every labelled row, registered as a version of its own that names the challenger as the fit
    the gates judged (``training.refit``), or the challenger itself."""
    from model_registry.registry import register_refit

    run = plan.scope()
    return register_refit(run.settings, run.model_name, challenger)


@task
def promote(
    plan: RunPlan, challenger: RegisteredVersion, served: RegisteredVersion, champion: GateDecision, drift: DriftResult
) -> str:
    """Make the served version the champion (the old one keeps alias ``previous``), refused if another
    run moved the champion after this run's gate compared against it."""
    from model_validation.decision import promote_served

    run = plan.scope()
    promote_served(run.settings, run.model_name, challenger.version, served.version, champion, drift)
    return served.version


@task
def skip_promotion(plan: RunPlan, challenger: RegisteredVersion, champion: GateDecision, drift: DriftResult) -> str:
    """Record on the challenger why it is not promoted; the champion keeps serving."""
    from model_validation.decision import explain_skip, record_decision

    run = plan.scope()
    reason = explain_skip(champion, drift)
    record_decision(run.settings, run.model_name, challenger.version, False, reason)
    return reason


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def summary(plan: RunPlan, challenger: RegisteredVersion, champion: GateDecision, drift: DriftResult) -> RunSummary:
    """Sum the run up (shown in the UI) and tell Prometheus that a retraining finished."""
    from model_validation.decision import summarize_run

    run = plan.scope()
    return summarize_run(
        run.settings,
        run.dataset.name,
        challenger.version,
        champion,
        drift,
        data_date=plan.logical_date,
        family=plan.family,
        horizon=plan.horizon,
        reason=plan.reason,
    )


def build(name: str, config: Path) -> Any:
    """The retraining DAG of the dataset config at ``config``: its form's training window ends where the
    config's ``daily.history_end`` says; the tasks above, wired by what they return."""
    settings = get_settings()

    @dag(
        **dag_arguments(f"retrain_{name}_forecaster", None, ["training", name], DOC.format(name=name, config=config)),
        params=form(daily_config(config).history_end),
    )
    def retrain() -> None:
        run = plan(str(config))
        checked = validate(run, ingest(run))
        rows = training_set(run, materialize(run, build_features(run, checked)))
        tuned = mapped_training_operator(
            "tune",
            settings,
            tuning_commands(run, rows),
            doc_md="One Optuna worker per command (a local process or a pod), all on the run's one study; each "
            "stops once the study holds the trials asked for, so a retried worker adds nothing.",
            **TRAINING_ARGS,
        )
        params_file = best_params(run)
        tuned >> params_file
        evaluated = mapped_training_operator(
            "evaluate_candidate",
            settings,
            candidate_commands(run, rows),
            doc_md="The selection family's candidates, one process or pod each, on the same folds of the same "
            "rows: `python -m model_training candidate`. Skipped for any other family.",
            **TRAINING_ARGS,
        )
        trained = training_operator(
            "train_final",
            settings,
            train_command(run, rows, params_file),
            doc_md="`python -m model_training train`: backtest, fit on the whole training set and log one MLflow "
            "run with the bundle, as a local process or a pod on the GPU node pool. A selection chooses among "
            "its candidates' evaluations and logs each as a child run.",
            # Runs after the candidates, or when there were none to evaluate (skipped): never after a failure.
            trigger_rule=TriggerRule.NONE_FAILED,
            **TRAINING_ARGS,
        )
        evaluated >> trained
        challenger = register_challenger(run, checked)
        trained >> challenger
        champion, drift = champion_gate(run, challenger, rows), drift_gate(run, challenger, rows)
        served, skipped = register_served(run, challenger), skip_promotion(run, challenger, champion, drift)
        decide(champion, drift) >> [served, skipped]
        [promote(run, challenger, served, champion, drift), skipped] >> summary(run, challenger, champion, drift)

    return retrain()


globals().update(dags_for_each_dataset(build))
