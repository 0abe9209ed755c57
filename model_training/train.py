"""Training job: training set from Feast -> backtest (and the intervals' calibration on its errors) ->
final fit -> MLflow run -> logged bundle."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.columns import EVENT_TIMESTAMP, feature_names, label_names
from core.dataset import DatasetConfig
from core.objects import read_parquet
from core.settings import Settings
from core.version import code_version
from feature_store.training_set import fingerprint, get_training_set, split_holdout
from model_bundle.intervals import BandSource, Calibration, calibrate
from model_training import forecasters
from model_training.backtest import backtest
from model_training.devices import Device, select
from model_training.plots import plot_backtest, plot_forecast

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    model_mae_by_entity: dict[str, float]
    baseline_mae_by_entity: dict[str, float]


def train(
    settings: Settings,
    dataset: DatasetConfig,
    logical_date: date,
    family: str = "xgboost",
    params: dict[str, Any] | None = None,
    training_set: str | None = None,
    tags: dict[str, str] | None = None,
    study: str | None = None,
) -> TrainingOutcome:
    """Backtest, fit on the whole window and log one MLflow run with the bundle (not registered).

    ``training_set`` is a parquet file (a local path or an ``s3://`` object) written by an earlier
    step (so tuning and training see the same rows); without it the set is read from Feast here,
    less the promotion holdout. ``tags`` go on the run; an orchestrator tags its run id there to find
    the run again. ``study``: the Optuna study the parameters came from; its summary, best trial and
    parameter importances are logged with the run.
    """
    import mlflow

    from model_registry.bundles import log_bundle
    from model_registry.tracking import experiment_id, require_configured

    require_configured(settings)
    started = time.monotonic()
    if training_set is not None:
        frame = read_parquet(training_set, settings)
    else:
        frame, _ = split_holdout(get_training_set(settings, dataset, logical_date), dataset)
    labels = label_names(dataset)
    device = select(settings.training_device)

    def make_model() -> forecasters.Forecaster:
        return forecasters.create(family, dataset, params, device=device)

    result = backtest(frame, dataset, make_model)
    calibration = calibrate(*result.errors(), dataset.intervals.levels, dataset.intervals.min_entity_errors)
    fit_started = time.monotonic()
    final = make_model().fit(frame, frame[labels].to_numpy(dtype="float64"))
    fit_seconds = time.monotonic() - fit_started
    bands = band_source(dataset, family, params, device, frame, calibration)

    with mlflow.start_run(
        experiment_id=experiment_id(settings), run_name=f"{dataset.name}-{family}-{logical_date}"
    ) as run:
        mlflow.set_tags(
            {
                "dataset": dataset.name,
                "family": family,
                "logical_date": str(logical_date),
                "dataset_fingerprint": fingerprint(frame),
                "code_version": code_version(),
                **(tags or {}),
            }
        )
        mlflow.log_params(
            {
                "family": family,
                "horizon": dataset.horizon,
                "training_rows": len(frame),
                "training_start": frame[EVENT_TIMESTAMP].min().isoformat(),
                "training_end": frame[EVENT_TIMESTAMP].max().isoformat(),
                "folds": dataset.training.backtest.folds,
                "gap": dataset.backtest_gap,
                **{f"param_{k}": v for k, v in final.params.items()},
            }
        )
        summary = result.summary()
        mlflow.log_metrics(summary)
        mlflow.log_metrics({"final_fit_seconds": fit_seconds, "final_fit_rows_per_second": len(frame) / fit_seconds})
        mlflow.set_tag("device", device.kind)
        mlflow.set_tag("interval_method", "conformal" if isinstance(bands, Calibration) else "quantile")
        if study:
            _log_study(settings, study)
        for fold in result.folds:
            mlflow.log_metrics({f"fold_{k}": v for k, v in fold.model.items()}, step=fold.fold.index)
            mlflow.log_metrics({f"fold_baseline_{k}": v for k, v in fold.baseline.items()}, step=fold.fold.index)
        for entity, value in result.mean_by_entity("model").items():
            mlflow.log_metric(f"backtest_mae_{entity}", value)
        for entity, value in result.mean_by_entity("baseline").items():
            mlflow.log_metric(f"baseline_mae_{entity}", value)
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "backtest.json"
            report.write_text(json.dumps(result.to_dict(), indent=2))
            mlflow.log_artifact(str(report))
            mlflow.log_artifact(str(plot_backtest(result, Path(tmp) / "backtest.png", f"{dataset.name} {family}")))
            newest = frame.groupby(dataset.entity_column, sort=True).tail(1)
            title = f"{dataset.name} {family}"
            drawn = plot_forecast(frame, dataset, final.predict(newest), bands, Path(tmp) / "forecast.png", title)
            mlflow.log_artifact(str(drawn))
        meta = {
            "family": family,
            "dataset": dataset.name,
            "horizon": dataset.horizon,
            "frequency_seconds": dataset.frequency.total_seconds(),
            "features": feature_names(dataset),
            "entity_column": dataset.entity_column,
        }
        mlflow.log_metrics({f"interval_width_{key}": float(sum(w) / len(w)) for key, w in calibration.widths.items()})
        # Rows with every feature present when there are such rows: the example shows a real input.
        features = frame[feature_names(dataset)]
        complete = features.dropna()
        example = (complete if not complete.empty else features).head(5)
        model_uri = log_bundle(settings, final, meta, example, bands)
    log.info(
        "trained %s on %d rows in %.1fs: backtest MAE %.4f vs seasonal naive %.4f (run %s)",
        family,
        len(frame),
        time.monotonic() - started,
        summary["backtest_mae"],
        summary["baseline_mae"],
        run.info.run_id,
    )
    return TrainingOutcome(
        run_id=run.info.run_id,
        model_uri=model_uri,
        metrics=summary,
        model_mae_by_entity=result.mean_by_entity("model"),
        baseline_mae_by_entity=result.mean_by_entity("baseline"),
    )


def _log_study(settings: Settings, study: str) -> None:
    """The tuning study behind the parameters: counts, best trial and importances as MLflow data."""
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


def band_source(
    dataset: DatasetConfig,
    family: str,
    params: dict[str, Any] | None,
    device: Device,
    frame: pd.DataFrame,
    calibration: Calibration,
) -> BandSource:
    """The bundle's intervals: the conformal ``calibration``, or with ``intervals.method: quantile``
    one model per band edge fitted with the family's quantile objective on the same rows (a family
    without one keeps the conformal bands, and says so)."""
    from model_bundle.quantiles import QuantileBands, edge_key, edges

    if dataset.intervals.method != "quantile":
        return calibration
    if forecasters.quantile_params(family, 0.5) is None:
        log.warning("%s has no quantile objective: its bands stay conformal", family)
        return calibration
    targets = frame[label_names(dataset)].to_numpy(dtype="float64")
    models = {}
    for level in dataset.intervals.levels:
        for quantile in edges(level):
            extra = forecasters.quantile_params(family, quantile)
            started = time.monotonic()
            model = forecasters.create(family, dataset, {**(params or {}), **(extra or {})}, device=device)
            models[edge_key(quantile)] = model.fit(frame, targets)
            log.info("fitted the %s quantile of %s in %.1fs", edge_key(quantile), family, time.monotonic() - started)
    return QuantileBands(levels=tuple(dataset.intervals.levels), family=family, models=models)
