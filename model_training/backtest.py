"""Rolling-origin backtest with an expanding window.

Each fold trains on rows at least ``gap`` periods before the fold's cutoff (so no training label
reaches into the test window) and tests on the ``test_size`` periods after it. The seasonal-naive
baseline is scored on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP, label_names, movement_names
from core.dataset import DatasetConfig
from core.progress import progress
from model_bundle.intervals import movement
from model_training.forecasters import Boosted, Forecaster, baseline, forecast_rows
from model_training.metrics import METRICS


@dataclass(frozen=True)
class Fold:
    index: int
    cutoff: pd.Timestamp
    train_end: pd.Timestamp  # inclusive
    test_end: pd.Timestamp  # inclusive


@dataclass
class FoldScore:
    fold: Fold
    model: dict[str, float]
    baseline: dict[str, float]
    model_by_step: dict[str, list[float]]
    baseline_by_step: dict[str, list[float]]
    model_mae_by_entity: dict[str, float]
    baseline_mae_by_entity: dict[str, float]
    train_rows: int
    test_rows: int
    # Out-of-sample errors (actual minus forecast, (test rows, H)) and each row's entity: what the
    # prediction intervals are calibrated on (:func:`model_bundle.intervals.calibrate`).
    errors: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    entities: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object), repr=False)
    # Each test row's recent movement (adaptive interval widths; empty where they are not adaptive).
    movements: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)


@dataclass
class BacktestResult:
    folds: list[FoldScore] = field(default_factory=list)

    def errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every fold's out-of-sample errors, stacked, and the entity of each row."""
        return (
            np.concatenate([f.errors for f in self.folds]),
            np.concatenate([f.entities for f in self.folds]),
        )

    def movements(self) -> np.ndarray:
        """Every fold's test rows' recent movement, stacked as :meth:`errors` stacks their errors."""
        return np.concatenate([f.movements for f in self.folds])

    def mean(self, which: str, metric: str) -> float:
        return float(np.mean([getattr(f, which)[metric] for f in self.folds]))

    def mean_by_entity(self, which: str) -> dict[str, float]:
        entities = self.folds[0].model_mae_by_entity.keys()
        attr = f"{which}_mae_by_entity"
        return {e: float(np.mean([getattr(f, attr)[e] for f in self.folds])) for e in entities}

    def summary(self) -> dict[str, float]:
        out = {}
        for metric in METRICS:
            out[f"backtest_{metric}"] = self.mean("model", metric)
            out[f"baseline_{metric}"] = self.mean("baseline", metric)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "model_mae_by_entity": self.mean_by_entity("model"),
            "baseline_mae_by_entity": self.mean_by_entity("baseline"),
            "folds": [
                {
                    "fold": s.fold.index,
                    "cutoff": s.fold.cutoff.isoformat(),
                    "train_end": s.fold.train_end.isoformat(),
                    "test_end": s.fold.test_end.isoformat(),
                    "train_rows": s.train_rows,
                    "test_rows": s.test_rows,
                    "model": s.model,
                    "baseline": s.baseline,
                    "model_by_step": s.model_by_step,
                    "baseline_by_step": s.baseline_by_step,
                    "model_mae_by_entity": s.model_mae_by_entity,
                    "baseline_mae_by_entity": s.baseline_mae_by_entity,
                }
                for s in self.folds
            ],
        }


def make_folds(timestamps: pd.Series, dataset: DatasetConfig) -> list[Fold]:
    """Cutoffs walk back from the newest timestamp in steps of ``test_size`` periods."""
    config = dataset.training.backtest
    step = dataset.frequency
    last = timestamps.max()
    first = timestamps.min()
    folds = []
    for i in range(config.folds):
        test_end = step.shift(last, -(config.folds - 1 - i) * config.test_size)
        cutoff = step.shift(test_end, -config.test_size)
        train_end = step.shift(cutoff, -dataset.backtest_gap)
        if train_end <= first:
            raise ValueError(
                f"not enough history for {config.folds} folds of {config.test_size} rows "
                f"(fold {i} would train on nothing before {train_end})"
            )
        folds.append(Fold(index=i, cutoff=cutoff, train_end=train_end, test_end=test_end))
    return folds


def step_scores(actual: np.ndarray, forecast: np.ndarray) -> tuple[dict[str, float], dict[str, list[float]]]:
    overall = {name: float(fn(actual, forecast)) for name, fn in METRICS.items()}
    by_step = {name: [float(v) for v in fn(actual, forecast, axis=0)] for name, fn in METRICS.items()}
    return overall, by_step


def by_entity(frame: pd.DataFrame, entity: str, actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    errors = np.abs(actual - forecast).mean(axis=1)
    return {str(k): float(v) for k, v in pd.Series(errors, index=frame.index).groupby(frame[entity]).mean().items()}


def fold_score(
    fold: Fold,
    test: pd.DataFrame,
    dataset: DatasetConfig,
    forecast: np.ndarray,
    naive_forecast: np.ndarray,
    train_rows: int,
) -> FoldScore:
    """One fold's scores of ``forecast`` and of the seasonal-naive ``naive_forecast`` on its ``test`` rows."""
    actual = test[label_names(dataset)].to_numpy(dtype=np.float64)
    model_overall, model_steps = step_scores(actual, forecast)
    naive_overall, naive_steps = step_scores(actual, naive_forecast)
    return FoldScore(
        fold=fold,
        model=model_overall,
        baseline=naive_overall,
        model_by_step=model_steps,
        baseline_by_step=naive_steps,
        model_mae_by_entity=by_entity(test, dataset.entity_column, actual, forecast),
        baseline_mae_by_entity=by_entity(test, dataset.entity_column, actual, naive_forecast),
        train_rows=train_rows,
        test_rows=len(test),
        errors=actual - forecast,
        entities=test[dataset.entity_column].to_numpy(dtype=str),
        movements=movement(test[columns].to_numpy(dtype=np.float64)).ravel()
        if (columns := movement_names(dataset))
        else np.empty(0),
    )


def fold_frames(
    training_set: pd.DataFrame, dataset: DatasetConfig
) -> Iterator[tuple[Fold, pd.DataFrame, pd.DataFrame]]:
    """Each fold of ``training_set`` with its training rows and its test rows."""
    stamps = training_set[EVENT_TIMESTAMP]
    for fold in make_folds(stamps, dataset):
        yield (
            fold,
            training_set[stamps <= fold.train_end],
            training_set[(stamps > fold.cutoff) & (stamps <= fold.test_end)],
        )


def backtest(
    training_set: pd.DataFrame,
    dataset: DatasetConfig,
    make_model: Callable[[], Forecaster],
    on_fold: Callable[[FoldScore], None] | None = None,
) -> BacktestResult:
    """Score a freshly fitted model per fold; ``on_fold`` sees each fold's score as it lands
    (a tuner prunes hopeless trials there). Each fold fits a model, so on a terminal a bar counts
    them; it clears when done, as inside a tuning trial it is one of many."""
    labels = label_names(dataset)
    naive = baseline(dataset)
    result = BacktestResult()
    # A pruned trial raises out of the loop: the with-block clears its bar all the same.
    with progress(list(fold_frames(training_set, dataset)), desc="backtest folds", unit="fold", leave=False) as folds:
        for fold, train, test in folds:
            model = make_model().fit(train, train[labels].to_numpy(dtype=np.float64))
            model_forecast = forecast_rows(model, test, training_set, dataset)
            result.folds.append(fold_score(fold, test, dataset, model_forecast, naive.predict(test), len(train)))
            if on_fold is not None:
                on_fold(result.folds[-1])
    return result


def scored(training_set: pd.DataFrame, dataset: DatasetConfig, forecasts: list[np.ndarray]) -> BacktestResult:
    """The backtest of forecasts made elsewhere: ``forecasts[i]`` are those of fold ``i``'s test rows."""
    naive = baseline(dataset)
    folds = list(fold_frames(training_set, dataset))
    if len(forecasts) != len(folds):
        raise ValueError(f"{len(forecasts)} folds of forecasts for {len(folds)} folds")
    return BacktestResult(
        [
            fold_score(fold, test, dataset, forecast, naive.predict(test), len(train))
            for (fold, train, test), forecast in zip(folds, forecasts, strict=True)
        ]
    )


class BoostedFolds:
    """The backtest's folds of one :class:`~model_training.forecasters.Boosted` model, trained side by
    side: each fold's model boosts on the fold's training rows and is scored on its test rows after
    every round, so that one number of rounds can be chosen for all folds on their mean error (the
    way ``xgboost.cv`` chooses it), the choice a sampled ``n_estimators`` makes, at the cost of one
    fit to the largest number tried. A family's rounds must not depend on what other models did
    between them (XGBoost seeds its sampling per round for that), so that after ``n`` rounds each
    fold's model is the one ``fit`` grows with ``n_estimators=n``.
    """

    def __init__(self, training_set: pd.DataFrame, dataset: DatasetConfig, make_model: Callable[[], Forecaster]):
        labels = label_names(dataset)
        self.models: list[Boosted] = []
        for _, train, test in fold_frames(training_set, dataset):
            model = make_model()
            if not isinstance(model, Boosted):
                raise TypeError(f"{type(model).__name__} does not boost round by round")
            validation = (test, test[labels].to_numpy(dtype=np.float64))
            model.start(train, train[labels].to_numpy(dtype=np.float64), validation)
            self.models.append(model)
        # (folds, rounds so far): each fold's test MAE after each round.
        self.errors = np.empty((len(self.models), 0))

    @property
    def rounds(self) -> int:
        return int(self.errors.shape[1])

    def boost(self, rounds: int) -> None:
        """``rounds`` more rounds on every fold, one fold after the other (each uses every core)."""
        self.errors = np.hstack([self.errors, np.stack([model.boost(rounds) for model in self.models])])

    def mean(self) -> np.ndarray:
        """The folds' mean test MAE after each round."""
        return np.asarray(self.errors.mean(axis=0))
