"""Choosing among candidates from their backtests: a leaderboard, then one of three choices.

Every candidate is backtested on the same rolling-origin folds of the same rows, so their errors line
up row by row. Each is scored per series on a scale-free error, its MAE over the series' own scale
(MASE; :func:`core.history.seasonal_scale` of the series' training values), and over the dataset as
the mean of those, so that every series counts the same whatever its level. Then:

* ``best``: the candidate of the lowest mean MASE, for every series;
* ``per_series``: each series its own best candidate, where it has at least ``min_errors`` backtest
  rows; the dataset's best for the others (and for series that appear later);
* ``combination``: each series the median, mean or error-weighted mean (each candidate weighted by
  the inverse of its squared MASE on the series: Bates and Granger's inverse-variance weights) of its
  ``top_k`` candidates; the dataset's ``top_k``, weighted by their mean MASE, for series with too
  few rows and for new ones.

A choice scored on the errors it was made on would flatter itself: the ``selection`` family
(:mod:`model_training.families.selection`) chooses inside each fold of its run's backtest, so the
run's scores are those of the choosing, and the promotion gate's holdout, which no choice saw,
judges the final one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig, SelectionConfig
from core.history import seasonal_scale, target_series
from model_bundle.families.selection import combine as combine_forecasts
from model_training.backtest import BacktestResult, fold_frames, scored
from model_training.candidates import Evaluation

Method = Literal["best", "per_series", "combination"]


@dataclass(frozen=True)
class Choice:
    """What a selection bundle carries: the dataset's candidates and each series' own."""

    default: list[str]
    by_entity: dict[str, list[str]]
    leaderboard: pd.DataFrame  # one row per candidate, best first
    mase_by_entity: pd.DataFrame = field(repr=False)  # entity x candidate
    # The weights of a weighted combination, in the order of the candidates they weigh.
    default_weights: list[float] = field(default_factory=list)
    weights: dict[str, list[float]] = field(default_factory=dict)

    def of(self, entity: str) -> list[str]:
        return self.by_entity.get(entity, self.default)

    def weights_of(self, entity: str) -> list[float]:
        return self.weights.get(entity, self.default_weights)


def inverse_error_weights(errors: Sequence[float]) -> list[float]:
    """Weights in proportion to the inverse of each error squared, summing to one: Bates and Granger's
    combination weights (the inverse of each forecast's error variance), on a scale-free error. Errors
    of zero share all the weight (a candidate that was exact); an error that is not a number gets none,
    unless none is (then the weights are equal)."""
    error = np.asarray(errors, dtype=np.float64)
    finite = np.isfinite(error)
    if not finite.any():
        return [1.0 / len(error)] * len(error)
    exact = finite & (error <= 0.0)
    weight = exact.astype(np.float64) if exact.any() else np.where(finite, 1.0 / np.where(finite, error, 1.0) ** 2, 0.0)
    return (weight / weight.sum()).tolist()


def series_scales(frame: pd.DataFrame, dataset: DatasetConfig) -> dict[str, float]:
    """Each entity's scale from its training values (lag 0 and labels of the training rows)."""
    return {e: seasonal_scale(s.values, dataset.seasonal_period) for e, s in target_series(frame, dataset).items()}


def scores(results: dict[str, BacktestResult], scales: dict[str, float]) -> tuple[pd.DataFrame, pd.Series]:
    """(entity x candidate MASE, backtest rows per entity) of aligned backtests."""
    columns, entities = {}, None
    for name, result in results.items():
        errors, owners = result.errors()
        if entities is None:
            entities = owners
        elif not np.array_equal(entities, owners):
            raise ValueError(f"{name}'s backtest rows are not the others': candidates must share their folds")
        mae = pd.Series(np.abs(errors).mean(axis=1)).groupby(owners).mean()
        columns[name] = mae / pd.Series({str(e): scales[str(e)] for e in mae.index})
    assert entities is not None, "no candidate"
    table = pd.DataFrame(columns)
    table.index = table.index.astype(str)
    return table, pd.Series(entities).astype(str).value_counts()


def choose(
    results: dict[str, BacktestResult],
    scales: dict[str, float],
    method: Method = "best",
    min_errors: int = 1,
    top_k: int = 3,
) -> Choice:
    """The choice ``method`` makes from the candidates' aligned backtests (see the module's text)."""
    mase, rows = scores(results, scales)
    mean = mase.mean(axis=0).sort_values(kind="stable")
    best_per_series = mase.idxmin(axis=1)
    leaderboard = pd.DataFrame(
        {
            "candidate": mean.index,
            "mase": mean.to_numpy(),
            "series_best": [int((best_per_series == c).sum()) for c in mean.index],
            "mae": [float(np.abs(results[c].errors()[0]).mean()) for c in mean.index],
        }
    )
    ranked = list(mean.index)
    default = ranked[:top_k] if method == "combination" else ranked[:1]
    by_entity: dict[str, list[str]] = {}
    weights: dict[str, list[float]] = {}
    if method != "best":
        for entity, own in mase.iterrows():
            if rows.get(entity, 0) < min_errors:
                continue
            order = list(own.sort_values(kind="stable").index)
            by_entity[str(entity)] = order[:top_k] if method == "combination" else order[:1]
            weights[str(entity)] = inverse_error_weights(own[by_entity[str(entity)]].to_list())
    return Choice(
        default=default,
        by_entity=by_entity,
        leaderboard=leaderboard,
        mase_by_entity=mase,
        default_weights=inverse_error_weights(mean[default].to_list()),
        weights=weights,
    )


def combined(entities: pd.Series, choice: Choice, forecasts: dict[str, np.ndarray], combine: str) -> np.ndarray:
    """Each row's forecast under ``choice``: its entity's candidates' ``forecasts`` of that row, combined
    (``median``, ``mean`` or ``weighted`` by the choice's weights) step by step where there are several."""
    out = np.empty_like(next(iter(forecasts.values())))
    owners = entities.astype(str).to_numpy()
    for entity in np.unique(owners):
        rows = owners == entity
        own = [forecasts[name][rows] for name in choice.of(str(entity))]
        out[rows] = combine_forecasts(own, combine, choice.weights_of(str(entity)))
    return out


@dataclass(frozen=True)
class Assembled:
    """A selection made from its candidates' evaluations: the choice on all rows, and the backtest of
    choosing (each fold chose on its own training rows) with each candidate's own backtest."""

    choice: Choice
    backtest: BacktestResult
    candidates: dict[str, BacktestResult]


def assemble(
    frame: pd.DataFrame, dataset: DatasetConfig, config: SelectionConfig, evaluations: dict[str, Evaluation]
) -> Assembled:
    """The choice among ``evaluations`` (all of ``frame``), and the backtest of making it: fold ``i``
    chooses on the candidates' backtests of its own training rows (their ``inner`` forecasts) and
    forecasts its test rows with what it chose."""

    def choice_on(rows: pd.DataFrame, results: dict[str, BacktestResult]) -> Choice:
        return choose(results, series_scales(rows, dataset), config.method, config.min_errors, config.top_k)

    candidates = {name: scored(frame, dataset, e.forecasts) for name, e in evaluations.items()}
    forecasts = []
    for i, (_, train, test) in enumerate(fold_frames(frame, dataset)):
        inner = {name: scored(train, dataset, e.inner[i]) for name, e in evaluations.items()}
        outer = {name: e.forecasts[i] for name, e in evaluations.items()}
        forecasts.append(combined(test[dataset.entity_column], choice_on(train, inner), outer, config.combine))
    return Assembled(choice_on(frame, candidates), scored(frame, dataset, forecasts), candidates)
