"""Training job: training set from Feast -> backtest (and the intervals' calibration on its errors) ->
final fit -> MLflow run -> logged bundle; with ``training.refit``, also the same model fitted on every
labelled row (the holdout included), logged beside it for serving once the gates have passed.

Two steps: :func:`fit_and_report` computes everything a run records (a :class:`TrainingResult`,
without MLflow), then :func:`model_training.run_log.log_training` writes that as one run. What the run
holds is thus in one value that a test or a caller can look at, and the run opens only once the
computing is done.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.columns import EVENT_TIMESTAMP, feature_names, history_name, label_names, movement_names
from core.dataset import DatasetConfig
from core.settings import Settings
from core.version import code_version
from feature_store.training_set import fingerprint, get_training_set, split_holdout
from model_bundle.forecasters import Predictor
from model_bundle.intervals import BandSource, Calibration, calibrate
from model_training import forecasters
from model_training.backtest import BacktestResult, backtest
from model_training.devices import Device, training_device
from model_training.plots import plot_backtest, plot_forecast, plot_leaderboard
from model_training.rows import training_rows
from model_training.run_log import log_training

if TYPE_CHECKING:
    import pandas as pd

    from model_training.candidates import Evaluation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    model_mae_by_entity: dict[str, float]
    baseline_mae_by_entity: dict[str, float]


@dataclass(frozen=True)
class CandidateReport:
    """One candidate of a selection as its own (child) run records it: its backtest on the folds every
    candidate shares, its fitted parameters and each series' MASE."""

    name: str
    backtest: BacktestResult
    params: dict[str, Any]
    fit_seconds: float
    mase_by_entity: pd.Series
    series_best: int  # series on which it scored best


@dataclass(frozen=True)
class Refit:
    """The model to serve: the evaluated fit's recipe (family and parameters; a selection: the same
    choice of the same candidates) fitted on every labelled row, with the evaluated fit's conformal
    bands (or quantile models refitted on the same rows). The gates judge the evaluated fit, which
    never saw the holdout; this one is what serves after they pass."""

    model: Predictor
    bands: BandSource
    example: pd.DataFrame
    rows: int
    start: str
    end: str
    fit_seconds: float

    @property
    def params(self) -> dict[str, Any]:
        return {"refit_rows": self.rows, "refit_start": self.start, "refit_end": self.end}


@dataclass(frozen=True)
class TrainingResult:
    """What one training computed, before anything is logged: the scores, the fitted model and its
    bands, and the run's name, tags, params and report files as MLflow will record them."""

    run_name: str
    tags: dict[str, str]  # dataset, family, data date, the rows' fingerprint, the code's version
    params: dict[str, Any]  # the training window, the backtest's folds, the fitted model's parameters
    device: str
    rows: int
    backtest: BacktestResult
    summary: dict[str, float]  # backtest means of the model and the seasonal-naive baseline
    calibration: Calibration  # conformal, on the backtest's errors (the bands unless quantile models)
    fit_seconds: float
    model: forecasters.Forecaster  # fitted on the whole window
    bands: BandSource
    meta: dict[str, Any]  # what the bundle says of the dataset it forecasts
    example: pd.DataFrame  # the bundle's input example
    reports: list[Path]  # backtest.json, backtest.png, forecast.png (a selection's: its leaderboard too)
    candidates: dict[str, CandidateReport] = field(default_factory=dict)  # a selection's, best first
    refit: Refit | None = None  # the same model on every labelled row (training.refit)

    @property
    def interval_method(self) -> str:
        return "conformal" if isinstance(self.bands, Calibration) else "quantile"

    @property
    def fit_metrics(self) -> dict[str, float]:
        metrics = {"final_fit_seconds": self.fit_seconds, "final_fit_rows_per_second": self.rows / self.fit_seconds}
        if self.refit is not None:
            metrics["refit_seconds"] = self.refit.fit_seconds
        return metrics

    @property
    def fold_metrics(self) -> list[tuple[int, dict[str, float]]]:
        """Each fold's scores, model and baseline, with the fold's index as the MLflow step."""
        return [
            (
                fold.fold.index,
                {
                    **{f"fold_{k}": v for k, v in fold.model.items()},
                    **{f"fold_baseline_{k}": v for k, v in fold.baseline.items()},
                },
            )
            for fold in self.backtest.folds
        ]

    @property
    def entity_metrics(self) -> dict[str, float]:
        """Each entity's backtest MAE, the model's and the baseline's, as metrics: up to
        :data:`~model_registry.tracking.ENTITY_METRICS_UP_TO` entities (every entity's are in
        :meth:`entity_table`)."""
        from model_registry.tracking import ENTITY_METRICS_UP_TO

        model, baseline = self.backtest.mean_by_entity("model"), self.backtest.mean_by_entity("baseline")
        if len(model) > ENTITY_METRICS_UP_TO:
            return {}
        return {
            **{f"backtest_mae_{entity}": v for entity, v in model.items()},
            **{f"baseline_mae_{entity}": v for entity, v in baseline.items()},
        }

    def entity_table(self) -> pd.DataFrame:
        """Each entity's backtest MAE, the model's and the baseline's: the run's ``mae_by_series.json``."""
        import pandas as pd

        model, baseline = self.backtest.mean_by_entity("model"), self.backtest.mean_by_entity("baseline")
        return pd.DataFrame(
            {"series": list(model), "mae": list(model.values()), "baseline_mae": [baseline.get(e) for e in model]}
        )

    @property
    def interval_widths(self) -> dict[str, float]:
        return {f"interval_width_{key}": float(sum(w) / len(w)) for key, w in self.calibration.widths.items()}


def train(
    settings: Settings,
    dataset: DatasetConfig,
    logical_date: date,
    family: str = "xgboost",
    params: dict[str, Any] | None = None,
    training_set: str | None = None,
    tags: dict[str, str] | None = None,
    study: str | None = None,
    candidates: str | None = None,
    labelled: str | None = None,
) -> TrainingOutcome:
    """Backtest, fit on the whole window and log one MLflow run with the bundle (not registered).

    ``training_set`` is a parquet file (a local path or an ``s3://`` object) written by an earlier
    step (so tuning and training see the same rows); without it the set is read from Feast here,
    less the promotion holdout. ``tags`` go on the run; an orchestrator tags its run id there to find
    the run again. ``study``: the Optuna study the parameters came from; its summary, best trial and
    parameter importances are logged with the run. ``candidates``: for the ``selection`` family, the
    prefix under which each candidate's evaluation was written (:mod:`model_training.candidates`, by
    the retraining DAG's candidate tasks); without it the candidates are evaluated here. ``labelled``:
    every labelled row (a parquet file, :func:`feature_store.training_set.labelled_location`), on which
    the same model is fitted again and logged beside the evaluated one (:class:`Refit`).
    """
    from model_registry.tracking import require_configured

    require_configured(settings)
    started = time.monotonic()
    if training_set is not None:
        frame = training_rows(training_set, dataset, family, settings)
    else:
        frame, _ = split_holdout(get_training_set(settings, dataset, logical_date), dataset)
    device = training_device(settings)
    evaluations = None
    if candidates is not None:
        from model_training import candidates as evaluated

        if family != "selection":
            raise ValueError(f"candidates' evaluations are for the selection family, not {family}")
        names = dataset.training.selection_with(params).candidates
        evaluations = {name: evaluated.load(evaluated.location(candidates, name), settings) for name in names}
    every_row = training_rows(labelled, dataset, family, settings) if labelled is not None else None
    with tempfile.TemporaryDirectory() as reports:  # the report files live until the run has logged them
        trained = fit_and_report(
            dataset, logical_date, frame, family, params, device, Path(reports), evaluations, every_row
        )
        run_id, model_uri = log_training(settings, trained, tags, study)
    log.info(
        "trained %s on %d rows in %.1fs: backtest MAE %.4f vs seasonal naive %.4f (run %s)",
        family,
        trained.rows,
        time.monotonic() - started,
        trained.summary["backtest_mae"],
        trained.summary["baseline_mae"],
        run_id,
    )
    return TrainingOutcome(
        run_id=run_id,
        model_uri=model_uri,
        metrics=trained.summary,
        model_mae_by_entity=trained.backtest.mean_by_entity("model"),
        baseline_mae_by_entity=trained.backtest.mean_by_entity("baseline"),
    )


def fit_and_report(
    dataset: DatasetConfig,
    logical_date: date,
    frame: pd.DataFrame,
    family: str,
    params: dict[str, Any] | None,
    device: Device,
    reports: Path,
    evaluations: dict[str, Evaluation] | None = None,
    labelled: pd.DataFrame | None = None,
) -> TrainingResult:
    """Backtest on ``frame``, calibrate the intervals on the backtest's errors, fit on all of it and
    write the report files into ``reports``: all that a training's run records, MLflow untouched.
    The ``selection`` family chooses among its candidates' ``evaluations`` (evaluated here when
    None); its backtest is that of the choosing, and each candidate's is reported too. With
    ``labelled`` (every labelled row), the same model is also fitted on those (:func:`refit`)."""

    def make_model() -> forecasters.Forecaster:
        return forecasters.create(family, dataset, params, device=device)

    candidates: dict[str, CandidateReport] = {}
    if family == "selection":
        final, result, candidates, fit_seconds = _select(dataset, frame, make_model(), device, evaluations)
    else:
        result = backtest(frame, dataset, make_model)
        fit_started = time.monotonic()
        final = make_model().fit(frame, frame[label_names(dataset)].to_numpy(dtype="float64"))
        fit_seconds = time.monotonic() - fit_started
    moving = movement_names(dataset)  # adaptive widths: in units of each row's recent movement
    calibration = calibrate(
        *result.errors(),
        dataset.intervals.levels,
        dataset.intervals.min_entity_errors,
        scales=result.movements() if moving else None,
        scale_columns=moving,
    )
    bands = band_source(dataset, family, params, device, frame, calibration)
    per_series = bool(getattr(final, "per_series", False))
    return TrainingResult(
        run_name=f"{dataset.name}-{family}-{logical_date}",
        tags={
            "dataset": dataset.name,
            "family": family,
            "logical_date": str(logical_date),
            "dataset_fingerprint": fingerprint(frame),
            "code_version": code_version(),
        },
        params=run_params(dataset, family, frame, final),
        device=device.kind,
        rows=len(frame),
        backtest=result,
        summary=result.summary(),
        calibration=calibration,
        fit_seconds=fit_seconds,
        model=final,
        bands=bands,
        meta=bundle_meta(dataset, family, per_series),
        example=input_example(dataset, frame, per_series),
        reports=write_reports(dataset, family, frame, result, final, bands, reports),
        candidates=candidates,
        refit=None if labelled is None else refit(dataset, family, params, device, final, bands, labelled),
    )


def refit(
    dataset: DatasetConfig,
    family: str,
    params: dict[str, Any] | None,
    device: Device,
    evaluated: forecasters.Forecaster,
    bands: BandSource,
    labelled: pd.DataFrame,
) -> Refit:
    """``evaluated``'s recipe fitted on ``labelled``: the family with the same parameters, or for a
    selection, each chosen candidate refitted and the same choice (per series, default, combination)."""
    from model_bundle.families.selection import SelectedForecaster

    started = time.monotonic()
    model: Predictor
    if isinstance(evaluated, SelectedForecaster):
        from model_training.candidates import fit

        members = {name: fit(labelled, dataset, name, device) for name in evaluated.members}
        chosen = SelectedForecaster(
            members,
            evaluated.families,
            evaluated.default,
            evaluated.choice,
            evaluated.entity_column,
            evaluated.combine,
            evaluated.default_weights,
            evaluated.weights,
        )
        chosen.params = dict(evaluated.params)
        model = chosen
    else:
        targets = labelled[label_names(dataset)].to_numpy(dtype="float64")
        model = forecasters.create(family, dataset, params, device=device).fit(labelled, targets)
    seconds = time.monotonic() - started
    if not isinstance(bands, Calibration):  # quantile models: refitted on the same rows
        bands = quantile_bands(dataset, family, params, device, labelled)
    stamps = labelled[EVENT_TIMESTAMP]
    log.info("refitted %s on every labelled row (%d) in %.1fs", family, len(labelled), seconds)
    return Refit(
        model=model,
        bands=bands,
        example=input_example(dataset, labelled, bool(getattr(model, "per_series", False))),
        rows=len(labelled),
        start=stamps.min().isoformat(),
        end=stamps.max().isoformat(),
        fit_seconds=seconds,
    )


def _select(
    dataset: DatasetConfig,
    frame: pd.DataFrame,
    selection: forecasters.Forecaster,
    device: Device,
    evaluations: dict[str, Evaluation] | None,
) -> tuple[forecasters.Forecaster, BacktestResult, dict[str, CandidateReport], float]:
    """The selection's choice among its candidates' evaluations, the backtest of choosing, each
    candidate's report (best first) and the seconds the candidates' fits took."""
    from model_training.candidates import evaluate
    from model_training.families.selection import SelectionTrainer

    assert isinstance(selection, SelectionTrainer)
    if evaluations is None:  # evaluated here: only the chosen are then fitted on all rows
        candidates = selection.config.candidates
        evaluations = {name: evaluate(frame, dataset, name, device, final=False) for name in candidates}
    assembled = selection.assemble(frame, evaluations)
    board = assembled.choice.leaderboard.set_index("candidate")
    reports = {
        name: CandidateReport(
            name=name,
            backtest=assembled.candidates[name],
            params=evaluations[name].params,
            fit_seconds=evaluations[name].fit_seconds,
            mase_by_entity=assembled.choice.mase_by_entity[name],
            series_best=int(board.loc[name, "series_best"]),
        )
        for name in board.index
    }
    return selection, assembled.backtest, reports, sum(e.fit_seconds for e in evaluations.values())


def run_params(
    dataset: DatasetConfig, family: str, frame: pd.DataFrame, model: forecasters.Forecaster
) -> dict[str, Any]:
    """The run's params: the training window, the backtest's folds and the fitted model's parameters."""
    return {
        "family": family,
        "horizon": dataset.horizon,
        "training_rows": len(frame),
        "training_start": frame[EVENT_TIMESTAMP].min().isoformat(),
        "training_end": frame[EVENT_TIMESTAMP].max().isoformat(),
        "folds": dataset.training.backtest.folds,
        "gap": dataset.backtest_gap,
        **{f"param_{k}": v for k, v in model.params.items()},
    }


def bundle_meta(dataset: DatasetConfig, family: str, per_series: bool = False) -> dict[str, Any]:
    """What the bundle carries of its dataset: the serving side reads its features and step from it."""
    meta = {
        "family": family,
        "dataset": dataset.name,
        "horizon": dataset.horizon,
        "frequency": str(dataset.frequency),
        "features": feature_names(dataset),
        "entity_column": dataset.entity_column,
    }
    if per_series:  # each row also brings its time and history
        meta |= {"time_column": EVENT_TIMESTAMP, "history_column": history_name(dataset)}
    return meta


def input_example(dataset: DatasetConfig, frame: pd.DataFrame, per_series: bool = False) -> pd.DataFrame:
    """Five rows of features for the bundle's signature: rows with every feature present when there
    are such rows, so that the example shows a real input. A per-series model's are each entity's
    newest rows, with their entity, time and history."""
    if per_series:
        from core.history import with_history

        newest = frame.groupby(dataset.entity_column, sort=True).tail(1).head(5)
        columns = [*feature_names(dataset), dataset.entity_column, EVENT_TIMESTAMP]
        return with_history(newest[columns], frame, dataset)
    features = frame[feature_names(dataset)]
    complete = features.dropna()
    return (complete if not complete.empty else features).head(5)


def write_reports(
    dataset: DatasetConfig,
    family: str,
    frame: pd.DataFrame,
    result: BacktestResult,
    model: forecasters.Forecaster,
    bands: BandSource,
    directory: Path,
) -> list[Path]:
    """The run's report files in ``directory``: the backtest as JSON and as a plot, and each entity's
    forecast from its newest row with its bands."""
    title = f"{dataset.name} {family}"
    report = directory / "backtest.json"
    report.write_text(json.dumps(result.to_dict(), indent=2))
    drawn = plot_backtest(result, directory / "backtest.png", title)
    newest = frame.groupby(dataset.entity_column, sort=True).tail(1)
    leaderboard = getattr(model, "leaderboard", None)
    reports = [report, drawn]
    if leaderboard is not None:  # the selection family: its candidates' scores, best first, and its choice
        board = directory / "leaderboard.csv"
        leaderboard.to_csv(board, index=False)
        choice = directory / "choice.json"
        chosen: dict[str, Any] = {"default": model.default, "series": model.choice, "combine": model.combine}  # type: ignore[attr-defined]
        if model.combine == "weighted":  # type: ignore[attr-defined]
            chosen |= {"default_weights": model.default_weights, "weights": model.weights}  # type: ignore[attr-defined]
        choice.write_text(json.dumps(chosen, indent=2))
        reports += [board, plot_leaderboard(leaderboard, directory / "leaderboard.png", title), choice]
    predicted = forecasters.forecast_rows(model, newest, frame, dataset)
    forecast = plot_forecast(frame, dataset, predicted, bands, directory / "forecast.png", title)
    return [*reports, forecast]


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
    if dataset.intervals.method != "quantile":
        return calibration
    if forecasters.quantile_params(family, 0.5) is None:
        log.warning("%s has no quantile objective: its bands stay conformal", family)
        return calibration
    return quantile_bands(dataset, family, params, device, frame)


def quantile_bands(
    dataset: DatasetConfig, family: str, params: dict[str, Any] | None, device: Device, frame: pd.DataFrame
) -> BandSource:
    """One model per band edge of the dataset's levels, fitted on ``frame`` with ``family``'s quantile
    objective."""
    from model_bundle.quantiles import QuantileBands, edge_key, edges

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
