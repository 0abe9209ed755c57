"""Fitting the statistical families: one statsforecast model per series of the training rows.

The series are the training rows' target values on the frequency grid (:func:`core.history.target_series`:
lag 0 and the newest row's labels). A series its model cannot fit (too short, constant, only
gaps) gets no model and forecasts as the last value; the reason is logged and kept in the bundle.
The series are fitted in contiguous partitions on the training's engine (:mod:`core.engine`: this
process, or Ray tasks), each by :func:`fit_partition`, and put back in their order: the same bundle
either way.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.columns import history_name
from core.dataset import DatasetConfig
from core.engine import Engine, partitions
from core.frequency import Frequency
from core.history import target_series
from model_bundle.families.statistical import MODELS, SeriesModel, StatisticalForecaster, Step, filled
from model_training.devices import CPU, Device
from model_training.forecasters import Validation

log = logging.getLogger(__name__)

# Fewer values than this and a model is not fitted: AutoETS and AutoTheta need a few seasons, and
# any model needs more values than parameters.
MIN_SEASONS = 2
MIN_VALUES = 10
# Series per partition at least: a Ray task costs a few milliseconds, a series' fit about as much or more.
SERIES_PER_PARTITION = 8


def _options(family: str, dataset: DatasetConfig, params: dict[str, Any], values: int) -> dict[str, Any]:
    season_length = dataset.seasonal_period
    options: dict[str, Any] = {}
    if family == "mstl":
        # The seasons two cycles of the series hold; a trend model without a season of its own.
        from statsforecast.models import AutoETS

        seasons = [s for s in dataset.seasonalities if s > 1 and values >= MIN_SEASONS * s]
        return {"season_length": seasons, "trend_forecaster": AutoETS(model="ZZN"), **params}
    if family in ("auto_ets", "auto_theta", "auto_arima"):
        # Too few values for two seasons: the model without a season (statsforecast would refuse).
        options["season_length"] = season_length if values >= MIN_SEASONS * season_length else 1
    if family == "auto_arima":
        # R's auto.arima selects on approximate likelihoods for long or seasonal-over-12 series; the
        # exact search takes seconds per series (13 s on M4 Hourly here).
        options["approximation"] = season_length > 12 or values > 150
    return {**options, **params}


def series_step(frequency: Frequency) -> Step:
    """What the bundle keeps of the dataset's frequency: enough to count the steps since training."""
    if frequency.is_fixed:
        return Step(seconds=frequency.fixed.total_seconds())
    return Step(months=frequency.months)


@dataclass(frozen=True)
class SeriesToFit:
    """One series' values on the grid (gaps filled) and the time of its last value."""

    entity: str
    values: np.ndarray
    end: pd.Timestamp


@dataclass(frozen=True)
class FitPartition:
    """A partition of series for one family to fit: what :func:`fit_partition` needs, wherever it runs."""

    family: str
    dataset: DatasetConfig
    params: dict[str, Any]
    season_length: int
    series: list[SeriesToFit]


def fit_series(
    family: str, dataset: DatasetConfig, params: dict[str, Any], season_length: int, series: SeriesToFit
) -> SeriesModel | str:
    """``series``' fitted model, or the reason it has none (too short, constant, a failed fit)."""
    from statsforecast import models

    values = series.values
    if len(values) < MIN_VALUES:
        return f"{len(values)} values, fewer than {MIN_VALUES}"
    if np.ptp(values) == 0:
        return "a constant series"
    options = _options(family, dataset, params, len(values))
    if options.get("season_length") == []:
        return f"{len(values)} values: not two cycles of any season of {dataset.seasonalities}"
    model = getattr(models, MODELS[family])(**options)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(values)
    except Exception as exc:  # one series' failed fit leaves that series out, not the run
        return f"{type(exc).__name__}: {exc}"
    season = season_length if family == "mstl" else int(options.get("season_length", 1))
    return SeriesModel.from_fit(family, season, model, values, series.end, dataset.history_length)


def fit_partition(partition: FitPartition) -> list[tuple[str, SeriesModel | str]]:
    """Each series of ``partition`` with its model or the reason it has none, in order: the unit of
    work an engine maps (a Ray task's whole input and output)."""
    fit = partition.family, partition.dataset, partition.params, partition.season_length
    return [(series.entity, fit_series(*fit, series)) for series in partition.series]


class StatisticalTrainer(StatisticalForecaster):
    dataset: DatasetConfig
    options: dict[str, Any]
    engine: Engine

    @classmethod
    def for_dataset(
        cls, dataset: DatasetConfig, params: dict[str, Any] | None = None, device: Device = CPU, **_: Any
    ) -> StatisticalTrainer:
        """The family's trainer for ``dataset``; its series are fitted on ``device``'s engine."""
        trainer = cls(
            family=cls.family,
            entity_column=dataset.entity_column,
            history_column=history_name(dataset),
            horizon=dataset.horizon,
            step=series_step(dataset.frequency),
            season_length=dataset.seasonal_period,
        )
        trainer.dataset, trainer.options, trainer.engine = dataset, dict(params or {}), device.engine
        return trainer

    def fit(
        self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None
    ) -> StatisticalTrainer:
        """Fit each series of ``features`` (the training rows with their labels), in partitions of
        series on the engine; ``validation`` is not used: each model selects on its own information
        criterion."""
        series = [
            SeriesToFit(entity, filled(grid.values), grid.end)
            for entity, grid in target_series(features, self.dataset).items()
        ]
        parts = partitions(series, self.engine, least=SERIES_PER_PARTITION)
        jobs = [FitPartition(self.name, self.dataset, self.options, self.season_length, part) for part in parts]
        self.models, self.skipped = {}, {}
        for entity, fitted in itertools.chain.from_iterable(self.engine.map(fit_partition, jobs)):
            if isinstance(fitted, str):
                self.skipped[entity] = fitted
                log.warning("%s left out %s: %s (it forecasts the last value)", self.name, entity, fitted)
            else:
                self.models[entity] = fitted
        self.params = {
            **self.params,
            **self.options,
            "series_fitted": len(self.models),
            "series_left_out": len(self.skipped),
        }
        return self


class MSTLTrainer(StatisticalTrainer):
    family = "mstl"


class AutoETSTrainer(StatisticalTrainer):
    family = "auto_ets"


class AutoThetaTrainer(StatisticalTrainer):
    family = "auto_theta"


class AutoARIMATrainer(StatisticalTrainer):
    family = "auto_arima"


class RandomWalkWithDriftTrainer(StatisticalTrainer):
    family = "random_walk_with_drift"
