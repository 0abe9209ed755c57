"""The ``selection`` family: the dataset's candidates (``training.selection``), backtested on the same
folds of the rows it is fitted on, a choice among them (:mod:`model_training.selection`), and the
chosen candidates fitted on all the rows, carried in one bundle.

Fitting chooses, so the training run's own backtest scores the choosing too: each of its folds
chooses on that fold's training rows alone, and the intervals are calibrated on those honest errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from model_bundle.families.selection import SelectedForecaster
from model_training.devices import CPU, Device
from model_training.forecasters import Validation

log = logging.getLogger(__name__)


class SelectionTrainer(SelectedForecaster):
    dataset: DatasetConfig
    device: Device
    leaderboard: pd.DataFrame

    @classmethod
    def for_dataset(
        cls, dataset: DatasetConfig, params: dict[str, Any] | None = None, device: Device = CPU, **_: Any
    ) -> SelectionTrainer:
        """``params`` override ``training.selection`` (``candidates``, ``method``, ``min_errors``,
        ``top_k``, ``combine``)."""
        from model_training.forecasters import FAMILIES

        config = type(dataset.training.selection).model_validate(
            {**dataset.training.selection.model_dump(), **(params or {})}
        )
        unknown = [c for c in config.candidates if c not in FAMILIES or c == cls.family]
        if unknown:
            raise ValueError(f"selection candidates must be model families other than selection: {unknown}")
        trainer = cls.__new__(cls)
        trainer.dataset, trainer.device, trainer.config = dataset, device, config
        trainer.entity_column = dataset.entity_column
        trainer.params = config.model_dump()
        return trainer

    config: Any

    def fit(
        self, features: pd.DataFrame, targets: np.ndarray, validation: Validation | None = None
    ) -> SelectionTrainer:
        from model_training import forecasters
        from model_training.backtest import backtest
        from model_training.selection import choose, series_scales

        dataset, config = self.dataset, self.config

        def candidate(name: str) -> Callable[[], forecasters.Forecaster]:
            return lambda: forecasters.create(name, dataset, device=self.device)

        results = {name: backtest(features, dataset, candidate(name)) for name in config.candidates}
        choice = choose(results, series_scales(features, dataset), config.method, config.min_errors, config.top_k)
        used = sorted({name for names in [choice.default, *choice.by_entity.values()] for name in names})
        models = {name: forecasters.create(name, dataset, device=self.device).fit(features, targets) for name in used}
        SelectedForecaster.__init__(
            self, models, {n: n for n in used}, choice.default, choice.by_entity, dataset.entity_column, config.combine
        )
        self.leaderboard = choice.leaderboard
        self.params = {
            **config.model_dump(),
            "default": "+".join(choice.default),
            "series_with_own_choice": len(choice.by_entity),
        }
        log.info("selection (%s) chose %s for the dataset:\n%s", config.method, choice.default, choice.leaderboard)
        return self
