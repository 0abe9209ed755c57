"""The ``selection`` family: the dataset's candidates (``training.selection``), backtested on the same
folds of the rows it is fitted on, a choice among them (:mod:`model_training.selection`), and the
chosen candidates fitted on all the rows, carried in one bundle.

Fitting chooses, so the training run's own backtest scores the choosing too: each of its folds
chooses on that fold's training rows alone, and the intervals are calibrated on those honest errors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from model_bundle.families.selection import SelectedForecaster
from model_training.devices import CPU, Device
from model_training.forecasters import Validation

if TYPE_CHECKING:
    from model_training.candidates import Evaluation
    from model_training.selection import Assembled, Choice

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

        config = dataset.training.selection_with(params)
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
        """Backtest every candidate on ``features``, choose, and fit what was chosen on all of them."""
        from model_training.backtest import scored
        from model_training.candidates import evaluate
        from model_training.selection import choose, series_scales

        config = self.config
        evaluations = {
            name: evaluate(features, self.dataset, name, self.device, nested=False, final=False)
            for name in config.candidates
        }
        results = {name: scored(features, self.dataset, e.forecasts) for name, e in evaluations.items()}
        scales = series_scales(features, self.dataset)
        self.chose(choose(results, scales, config.method, config.min_errors, config.top_k), evaluations, features)
        return self

    def assemble(self, frame: pd.DataFrame, evaluations: dict[str, Evaluation]) -> Assembled:
        """Choose among candidates evaluated elsewhere (each in a training pod of its own) on ``frame``:
        this model becomes the choice; the result also holds the backtest of choosing."""
        from model_training.selection import assemble

        missing = sorted(set(self.config.candidates) - set(evaluations))
        if missing:
            raise ValueError(f"no evaluation of the candidates {missing}")
        for name in self.config.candidates:
            evaluations[name].check_rows(frame)
        assembled = assemble(frame, self.dataset, self.config, {n: evaluations[n] for n in self.config.candidates})
        self.chose(assembled.choice, evaluations, frame)
        return assembled

    def chose(self, choice: Choice, evaluations: dict[str, Evaluation], frame: pd.DataFrame) -> None:
        """Become ``choice``, with the candidates it names, fitted on ``frame``, as members."""
        used = sorted({name for names in [choice.default, *choice.by_entity.values()] for name in names})
        members = {name: evaluations[name].fitted(frame, self.dataset, self.device) for name in used}
        SelectedForecaster.__init__(
            self, members, {n: n for n in used}, choice.default, choice.by_entity, self.dataset.entity_column,
            self.config.combine, choice.default_weights, choice.weights,
        )  # fmt: skip
        # How many series each candidate could not fit (they forecast their last value in it).
        left_out = [evaluations[name].series_left_out for name in choice.leaderboard["candidate"]]
        self.leaderboard = choice.leaderboard.assign(series_left_out=left_out)
        self.params = {
            **self.config.model_dump(),
            "default": "+".join(choice.default),
            "series_with_own_choice": len(choice.by_entity),
        }
        log.info("selection (%s) chose %s for the dataset:\n%s", self.config.method, choice.default, choice.leaderboard)
