"""Nightly backtest: the registered champion (and a newer challenger) scored on the newest data.

The models are not refitted: this measures how the bundles that serve (or may serve) do on recent
folds, against the backtest error they were registered with. A ratio above the configured bound
fails the job with a clear message, after the figures are logged and pushed.
"""

from __future__ import annotations

import logging
import time
from datetime import date

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP, feature_names, label_names
from core.dataset import DatasetConfig
from core.partitions import latest_validated_date
from core.pushgateway import Figure, push_figures
from core.settings import Settings
from feature_store.training_set import get_training_set
from model_bundle.outputs import point_forecast
from model_registry.registry import champion_version, evaluated_fit
from model_registry.tracking import CHALLENGER, client, experiment_id, require_configured
from model_training.backtest import make_folds
from model_training.forecasters import baseline
from model_training.metrics import METRICS
from monitoring.outcomes import ModelBacktest

log = logging.getLogger(__name__)


class BacktestRegressionError(RuntimeError):
    """The champion's recent error grew past the allowed ratio of its registered error."""


def _score_version(
    settings: Settings, dataset: DatasetConfig, frame: pd.DataFrame, model_name: str, version: str, role: str
) -> ModelBacktest:
    import mlflow

    from model_registry.provenance import trusted_model

    mlflow_client = client(settings)
    model_version = mlflow_client.get_model_version(model_name, version)
    registered_mae = float(mlflow_client.get_run(str(model_version.run_id)).data.metrics["backtest_mae"])
    naive = baseline(dataset)
    labels, columns = label_names(dataset), feature_names(dataset)
    stamps = frame[EVENT_TIMESTAMP]
    per_fold: list[dict[str, float]] = []
    with (
        trusted_model(settings, model_name, version) as model,
        mlflow.start_run(experiment_id=experiment_id(settings), run_name=f"nightly-backtest-{role}-v{version}"),
    ):
        mlflow.set_tags({"job": "nightly_backtest", "dataset": dataset.name, "model_version": version, "role": role})
        for fold in make_folds(stamps, dataset):
            test = frame[(stamps > fold.cutoff) & (stamps <= fold.test_end)]
            actual = test[labels].to_numpy(dtype=np.float64)
            forecast = point_forecast(model.predict(test[columns].astype("float64")))
            scores = {name: float(fn(actual, forecast)) for name, fn in METRICS.items()}
            scores["baseline_mae"] = float(METRICS["mae"](actual, naive.predict(test)))
            mlflow.log_metrics({f"fold_{k}": v for k, v in scores.items()}, step=fold.index)
            per_fold.append(scores)
        mean = {k: float(np.mean([f[k] for f in per_fold])) for k in per_fold[0]}
        ratio = mean["mae"] / registered_mae
        mlflow.log_metrics({**{f"mean_{k}": v for k, v in mean.items()}, "error_ratio": ratio})
        run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    return ModelBacktest(
        role=role,
        version=version,
        mae=mean["mae"],
        rmse=mean["rmse"],
        smape=mean["smape"],
        baseline_mae=mean["baseline_mae"],
        registered_mae=registered_mae,
        ratio=ratio,
        folds=len(per_fold),
        run_id=run_id,
    )


def backtest_registered(settings: Settings, dataset: DatasetConfig, logical_date: date) -> list[ModelBacktest]:
    """Score the champion and, if it differs, the challenger on the newest folds."""
    from mlflow.exceptions import MlflowException

    require_configured(settings)
    model_name = settings.model_name(dataset.name)
    champion = champion_version(settings, model_name)
    if champion is None:
        raise LookupError(f"{model_name} has no champion to backtest")
    frame = get_training_set(settings, dataset, logical_date)
    results = [_score_version(settings, dataset, frame, model_name, champion, "champion")]
    try:
        challenger = str(client(settings).get_model_version_by_alias(model_name, CHALLENGER).version)
    except MlflowException:
        challenger = None
    # The challenger alias stays on the fit the gates judged: a champion refitted from it is that one.
    if challenger is not None and challenger not in (champion, evaluated_fit(settings, model_name, champion)):
        results.append(_score_version(settings, dataset, frame, model_name, challenger, "challenger"))
    return results


def publish(settings: Settings, dataset: DatasetConfig, results: list[ModelBacktest]) -> bool:
    figures: list[Figure] = []
    for r in results:
        labels = {"role": r.role, "version": r.version}
        figures += [
            Figure("mlops_backtest_mae", "Mean MAE over the nightly backtest's folds.", r.mae, labels),
            Figure("mlops_backtest_baseline_mae", "Seasonal-naive MAE on the same folds.", r.baseline_mae, labels),
            Figure("mlops_backtest_error_ratio", "Nightly MAE / MAE at registration.", r.ratio, labels),
        ]
    figures.append(
        Figure("mlops_backtest_last_run_timestamp_seconds", "End of the last nightly backtest.", time.time())
    )
    figures.append(
        Figure(
            "mlops_backtest_max_error_ratio",
            "Error ratio above which the champion counts as regressed (the dataset's backtest_error_ratio).",
            dataset.promotion.backtest_error_ratio,
        )
    )
    return push_figures(settings, "nightly_backtest", {"dataset": dataset.name}, figures)


def check_regression(dataset: DatasetConfig, results: list[ModelBacktest]) -> str:
    """Raise :class:`BacktestRegressionError` when the champion's error ratio is past the dataset's
    bound; otherwise one line that sums the scores up."""
    bound = dataset.promotion.backtest_error_ratio
    for r in results:
        if r.role == "champion" and r.ratio > bound:
            raise BacktestRegressionError(
                f"champion v{r.version} of {dataset.name}: nightly MAE {r.mae:.4f} is {r.ratio:.2f}x its registered "
                f"backtest MAE {r.registered_mae:.4f} (allowed: {bound:.2f}x); retrain or roll back"
            )
    return "; ".join(f"{r.role} v{r.version}: MAE {r.mae:.4f} ({r.ratio:.2f}x registered)" for r in results)


def backtest_latest(settings: Settings, dataset: DatasetConfig, data_date: date | None = None) -> list[ModelBacktest]:
    """The nightly job: registered models on the folds of ``data_date`` (by default the newest
    validated partition)."""
    return backtest_registered(settings, dataset, data_date or latest_validated_date(settings, dataset))
