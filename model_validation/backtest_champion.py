"""Nightly backtest: the registered champion (and a newer challenger) scored on the newest data.

The models are not refitted: this measures how the bundles that serve (or may serve) do on recent
folds, against the backtest error they were registered with. A ratio above the configured bound
fails the job with a clear message, after the figures are logged and pushed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd

from configs.dataset import DatasetConfig
from configs.settings import Settings
from data_pipeline.landing import partition_dates
from data_pipeline.validation import validated_root
from feature_store.features import EVENT_TIMESTAMP, feature_names
from feature_store.training_set import get_training_set, label_names
from model_registry.registry import champion_version
from model_registry.tracking import CHALLENGER, client, configure
from model_training.backtest import make_folds
from model_training.families.seasonal_naive import SeasonalNaive
from model_training.metrics import METRICS
from monitoring.pushgateway import Figure, push_figures

log = logging.getLogger(__name__)


class BacktestRegressionError(RuntimeError):
    """The champion's recent error grew past the allowed ratio of its registered error."""


@dataclass(frozen=True)
class ModelBacktest:
    role: str
    version: str
    mae: float
    rmse: float
    smape: float
    baseline_mae: float
    registered_mae: float
    ratio: float
    folds: int
    run_id: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def latest_validated_date(settings: Settings, dataset: DatasetConfig) -> date:
    dates = partition_dates(validated_root(settings), dataset)
    if not dates:
        raise FileNotFoundError(f"no validated data for {dataset.name}: run the retraining DAG first")
    return dates[-1]


def _score_version(
    settings: Settings, dataset: DatasetConfig, frame: pd.DataFrame, model_name: str, version: str, role: str
) -> ModelBacktest:
    import mlflow

    from model_registry.provenance import trusted_model

    mlflow_client = client(settings)
    model_version = mlflow_client.get_model_version(model_name, version)
    registered_mae = float(mlflow_client.get_run(str(model_version.run_id)).data.metrics["backtest_mae"])
    baseline = SeasonalNaive.for_dataset(dataset)
    labels, columns = label_names(dataset), feature_names(dataset)
    stamps = frame[EVENT_TIMESTAMP]
    per_fold: list[dict[str, float]] = []
    with (
        trusted_model(settings, model_name, version) as model,
        mlflow.start_run(run_name=f"nightly-backtest-{role}-v{version}"),
    ):
        mlflow.set_tags({"job": "nightly_backtest", "dataset": dataset.name, "model_version": version, "role": role})
        for fold in make_folds(stamps, dataset):
            test = frame[(stamps > fold.cutoff) & (stamps <= fold.test_end)]
            actual = test[labels].to_numpy(dtype=np.float64)
            forecast = model.predict(test[columns].astype("float64")).to_numpy(dtype=np.float64)
            scores = {name: float(fn(actual, forecast)) for name, fn in METRICS.items()}
            scores["baseline_mae"] = float(METRICS["mae"](actual, baseline.predict(test)))
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

    configure(settings)
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
    if challenger is not None and challenger != champion:
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


def check_regression(dataset: DatasetConfig, results: list[ModelBacktest]) -> None:
    bound = dataset.promotion.backtest_error_ratio
    for r in results:
        if r.role == "champion" and r.ratio > bound:
            raise BacktestRegressionError(
                f"champion v{r.version} of {dataset.name}: nightly MAE {r.mae:.4f} is {r.ratio:.2f}x its registered "
                f"backtest MAE {r.registered_mae:.4f} (allowed: {bound:.2f}x); retrain or roll back"
            )


def backtest_latest(settings: Settings, dataset: DatasetConfig) -> list[ModelBacktest]:
    """The nightly job: registered models on the newest validated partition."""
    return backtest_registered(settings, dataset, latest_validated_date(settings, dataset))


def publish_dicts(settings: Settings, dataset: DatasetConfig, results: list[dict[str, object]]) -> bool:
    return publish(settings, dataset, [ModelBacktest(**r) for r in results])  # type: ignore[arg-type]


def check_regression_dicts(dataset: DatasetConfig, results: list[dict[str, object]]) -> str:
    backtests = [ModelBacktest(**r) for r in results]  # type: ignore[arg-type]
    check_regression(dataset, backtests)
    return "; ".join(f"{b.role} v{b.version}: MAE {b.mae:.4f} ({b.ratio:.2f}x registered)" for b in backtests)
