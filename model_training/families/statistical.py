"""Fitting the statistical families: one statsforecast model per series of the training rows.

The series are the training rows' target values on the frequency grid (:func:`core.history.target_series`:
lag 0 and the newest row's labels). A series its model cannot fit (too short, constant, only
gaps) gets no model and forecasts as the last value; the reason is logged and kept in the bundle.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from core.columns import history_name
from core.dataset import DatasetConfig
from core.frequency import Frequency
from core.history import target_series
from model_bundle.families.statistical import MODELS, SeriesModel, StatisticalForecaster, Step, filled
from model_training.forecasters import Validation

log = logging.getLogger(__name__)

# Fewer values than this and a model is not fitted: AutoETS and AutoTheta need a few seasons, and
# any model needs more values than parameters.
MIN_SEASONS = 2
MIN_VALUES = 10


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


class StatisticalTrainer(StatisticalForecaster):
    dataset: DatasetConfig
    options: dict[str, Any]

    @classmethod
    def for_dataset(cls, dataset: DatasetConfig, params: dict[str, Any] | None = None, **_: Any) -> StatisticalTrainer:
        trainer = cls(
            family=cls.family,
            entity_column=dataset.entity_column,
            history_column=history_name(dataset),
            horizon=dataset.horizon,
            step=series_step(dataset.frequency),
            season_length=dataset.seasonal_period,
        )
        trainer.dataset, trainer.options = dataset, dict(params or {})
        return trainer

    def fit(
        self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None
    ) -> StatisticalTrainer:
        """Fit each series of ``features`` (the training rows with their labels); ``validation`` is not
        used: each model selects on its own information criterion."""
        from statsforecast import models

        self.models, self.skipped = {}, {}
        for entity, grid in target_series(features, self.dataset).items():
            values = filled(grid.values)
            reason = None
            if len(values) < MIN_VALUES:
                reason = f"{len(values)} values, fewer than {MIN_VALUES}"
            elif np.ptp(values) == 0:
                reason = "a constant series"
            if reason is None:
                options = _options(self.name, self.dataset, self.options, len(values))
                if options.get("season_length") == []:
                    reason = f"{len(values)} values: not two cycles of any season of {self.dataset.seasonalities}"
            if reason is None:
                model = getattr(models, MODELS[self.name])(**options)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.fit(values)
                except Exception as exc:  # one series' failed fit leaves that series out, not the run
                    reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                self.skipped[entity] = reason
                log.warning("%s left out %s: %s (it forecasts the last value)", self.name, entity, reason)
                continue
            season = self.season_length if self.name == "mstl" else int(options.get("season_length", 1))
            keep = self.dataset.history_length
            self.models[entity] = SeriesModel.from_fit(self.name, season, model, values, grid.end, keep)
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
