"""A training's MLflow run: what :func:`model_training.train.fit_and_report` computed, logged as one
run with the bundle.

Logging is kept apart from computing so that the run holds exactly one computed value, and a failure
while computing leaves no half-logged run behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from core.settings import Settings

if TYPE_CHECKING:
    from model_training.train import CandidateReport, TrainingResult


class LoggedRun(NamedTuple):
    run_id: str
    model_uri: str  # the bundle logged in the run


def log_training(
    settings: Settings, trained: TrainingResult, tags: dict[str, str] | None = None, study: str | None = None
) -> LoggedRun:
    """Log ``trained`` as one run of the settings' experiment: tags (``tags`` over the training's own),
    params, metrics (the folds' with their index as the step), the report files and the bundle (with a
    refit, its bundle too, as model ``refit``).
    ``study``: the Optuna study the parameters came from, summed up in the run."""
    import mlflow

    from model_registry.bundles import log_bundle
    from model_registry.tracking import experiment_id

    with mlflow.start_run(experiment_id=experiment_id(settings), run_name=trained.run_name) as run:
        mlflow.set_tags({**trained.tags, **(tags or {})})
        mlflow.log_params(trained.params)
        mlflow.log_metrics(trained.summary)
        mlflow.log_metrics(trained.fit_metrics)
        mlflow.set_tag("device", trained.device)
        mlflow.set_tag("interval_method", trained.interval_method)
        if study:
            log_study(settings, study)
        for step, metrics in trained.fold_metrics:
            mlflow.log_metrics(metrics, step=step)
        mlflow.log_metrics(trained.entity_metrics)
        mlflow.log_table(trained.entity_table(), "mae_by_series.json")
        for report in trained.reports:
            mlflow.log_artifact(str(report))
        mlflow.log_metrics(trained.interval_widths)
        for candidate in trained.candidates.values():
            log_candidate(settings, trained, candidate)
        model_uri = log_bundle(settings, trained.model, trained.meta, trained.example, trained.bands)
        if trained.refit is not None:  # registered and served only once the gates pass on the evaluated fit
            from model_registry.bundles import REFIT_URI_TAG

            refit = trained.refit
            mlflow.log_params(refit.params)
            log_bundle(settings, refit.model, trained.meta, refit.example, refit.bands, "refit", REFIT_URI_TAG)
    return LoggedRun(run.info.run_id, model_uri)


def log_candidate(settings: Settings, trained: TrainingResult, candidate: CandidateReport) -> None:
    """One candidate of a selection as a child run of the active run: its backtest on the folds every
    candidate shares (per fold and per horizon step), its fitted parameters and each series' MASE.
    It carries the dataset's tags but not the caller's (a DAG run's id finds the parent alone)."""
    import mlflow

    from model_registry.tracking import experiment_id

    name = f"{trained.run_name}-{candidate.name}"
    with mlflow.start_run(experiment_id=experiment_id(settings), run_name=name, nested=True):
        mlflow.set_tags({**trained.tags, "family": candidate.name, "role": "candidate"})
        mlflow.log_params({f"param_{k}": v for k, v in candidate.params.items()})
        result = candidate.backtest
        mlflow.log_metrics(
            {
                **result.summary(),
                "backtest_mase": float(candidate.mase_by_entity.mean()),
                "series_best": float(candidate.series_best),
                "fit_seconds": candidate.fit_seconds,
            }
        )
        for fold in result.folds:
            mlflow.log_metrics({f"fold_{k}": v for k, v in fold.model.items()}, step=fold.fold.index)
        for step, mae in enumerate(np.mean([f.model_by_step["mae"] for f in result.folds], axis=0), start=1):
            mlflow.log_metric("backtest_mae_by_step", float(mae), step=step)
        mlflow.log_table(
            candidate.mase_by_entity.rename("mase").rename_axis("series").reset_index(), "mase_by_series.json"
        )


def log_study(settings: Settings, study: str) -> None:
    """The tuning study behind the parameters, in the active run: counts, best trial and importances
    as MLflow data."""
    import mlflow

    from model_training.tuning import study_summary

    summary = study_summary(settings, study)
    if summary is None:
        mlflow.set_tag("tuning_study", f"{study} (not found)")
        return
    mlflow.set_tag("tuning_study", study)
    metrics = {f"tuning_trials_{state}": float(count) for state, count in summary["states"].items()}
    if "best_trial" in summary:
        metrics["tuning_best_value"] = summary["best_trial"]["value"]
        metrics["tuning_best_trial"] = float(summary["best_trial"]["number"])
    metrics.update({f"tuning_importance_{k}": v for k, v in summary.get("importances", {}).items()})
    mlflow.log_metrics(metrics)
    mlflow.log_dict(summary, "tuning/study.json")
