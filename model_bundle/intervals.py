"""Prediction intervals a bundle carries: split-conformal half-widths per level and horizon step.

Calibration uses the rolling-origin backtest's out-of-sample errors: for each horizon step ``h`` and
level ``a``, the half-width is the ``ceil((n + 1) a)``-th smallest of the ``n`` absolute errors at
that step (the finite-sample correction split conformal needs; without it few errors under-cover).
Errors grow with the step, so each step has its own width rather than one for all (what
``PredictionIntervals(h=1)`` of mlforecast gives). An entity with enough errors gets widths of its
own; the others use the dataset's. The widths travel in the bundle as JSON, nothing pickled, and
turning a point forecast into bands is one addition: serving pays next to nothing for them.

Adaptive widths (``intervals.adaptive``, the default) are in units of each row's recent movement:
the mean absolute one-step change of the target's newest consecutive lags (``scale_columns``). Each
backtest error is divided by its row's movement before the widths are taken, and a band's half-width
is the width times its own row's movement: a series that moves more now gets wider bands, a calm one
narrower, where absolute widths carry the calibration period's volatility into every forecast (on
ETT's test split they over-covered by up to 12 points; adaptive, 8 of the 12 seasonal-naive, NLinear
and DLinear rows are within 2 points, none off by more than 3.3). Where the lags hold fewer than
:data:`MIN_CHANGES` changes (a weekly or yearly series' default lags are its last two values), one
change is too noisy a unit: a quiet step makes a row's errors look huge, a jump its band far too
wide. Each series' typical movement over its calibration rows (the median, or the mean for a
series that mostly did not move) is then the unit of all its rows: widths free of each series'
scale, as MASE's are.

An entity with too few errors for widths of its own still has enough to say how large its errors
run against the others' (in the same units): the mean absolute error over all its steps, relative to
the median entity's (from :data:`MIN_LEVEL_ROWS` origins on). The dataset's widths are taken from
every row's error over its entity's ratio and given back multiplied by it, so a series whose errors
are small against its movement (a smooth daily cycle) is not given the band of one whose errors are
large (a noisy series): one backtest fold of M4 Hourly (48 origins of 48 steps) gives each series
enough for its ratio where a width of its own needs 100 errors per step (its 95 % band's MSIS went
from 44.2 to 9.2, ACD 0.021 to 0.023).

Time series are not exchangeable, so the nominal level is a target, not a guarantee: realized
coverage is measured on the test split (``make bench-accuracy``) and on the forecasts scored every
day.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

INTERVALS_FILE = "intervals.json"
MIN_CHANGES = 3  # changes among a row's lags for its own movement to be its unit (a quarterly season's lags)
# Rows (forecast origins) an entity needs for its own error level: the steps of one origin's forecast
# err together, so a short fold's many errors say little (M4 Weekly's 13 origins of 13 steps gave
# levels that under-covered: ACD 0.091 against 0.037 without them).
MIN_LEVEL_ROWS = 30
CONFORMAL = "split_conformal_abs"


class BandSource(Protocol):
    """What a bundle's intervals offer, whichever way they were made (conformal widths here, models of
    the family's quantile objective in :mod:`model_bundle.quantiles`)."""

    @property
    def levels(self) -> tuple[float, ...]: ...

    def bands(
        self, point: np.ndarray, entities: Sequence[str] | None = None, features: pd.DataFrame | None = None
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]: ...

    def save(self, directory: Path) -> None: ...


def movement(values: np.ndarray) -> np.ndarray:
    """(rows, 1): each row's mean absolute change between neighbouring columns of ``values`` (the
    target's consecutive lags), NaN where a row has none."""
    with np.errstate(invalid="ignore"):
        changes = np.abs(np.diff(np.asarray(values, dtype=np.float64), axis=1))
        known = np.isfinite(changes).sum(axis=1, keepdims=True)
        total = np.nansum(changes, axis=1, keepdims=True)
    return np.where(known > 0, total / np.maximum(known, 1), np.nan)


def level_key(level: float) -> str:
    """``0.8`` -> ``"80"``, ``0.975`` -> ``"97.5"``: how a level names columns and JSON keys."""
    return f"{level * 100:g}"


def conformal_width(errors: np.ndarray, level: float) -> np.ndarray:
    """Per column of ``errors`` (n, H): the ``ceil((n + 1) level)``-th smallest absolute error (the
    largest when that rank passes n)."""
    absolute = np.sort(np.abs(errors), axis=0)
    n = absolute.shape[0]
    rank = min(math.ceil((n + 1) * level), n)
    return np.asarray(absolute[rank - 1], dtype=np.float64)


@dataclass(frozen=True)
class Calibration:
    """Half-widths per level: the dataset's (``widths[level]``, one per step) and, where an entity had
    enough errors, its own (``by_entity[entity][level]``)."""

    levels: tuple[float, ...]
    widths: dict[str, list[float]]
    by_entity: dict[str, dict[str, list[float]]]
    errors_per_step: int
    # Adaptive widths: the lag columns a row's movement is taken from (empty: absolute widths), and
    # the least movement a row counts with (a tenth of the calibration rows' median: a flat stretch
    # does not shrink its band to nothing).
    scale_columns: tuple[str, ...] = ()
    scale_floor: float = 0.0
    # Per entity, the median movement of its calibration rows: the unit of its rows where the lags
    # hold too few changes for a row's own movement.
    entity_movement: dict[str, float] = field(default_factory=dict)
    # Per entity without widths of its own: its mean absolute error (in the widths' units) over the
    # median entity's; the dataset's widths are multiplied by it (1 for an entity not listed).
    entity_level: dict[str, float] = field(default_factory=dict)

    @property
    def typical_only(self) -> bool:
        """Whether each row's own movement is too noisy a unit (too few changes among its lags)."""
        return 0 < len(self.scale_columns) - 1 < MIN_CHANGES

    def units(self, moved: np.ndarray, entities: Sequence[str] | None) -> np.ndarray:
        """(rows, 1): the unit each row's widths are in: its movement ``moved`` (rows, 1), at least the
        dataset's floor; with too few changes among the lags, its entity's typical movement (its own
        movement for an entity the calibration never saw)."""
        own = np.fmax(np.nan_to_num(moved, nan=self.scale_floor), self.scale_floor)
        if not self.typical_only or entities is None or not self.entity_movement:
            return own
        typical = np.asarray([[self.entity_movement.get(str(e), np.nan)] for e in entities], dtype=np.float64)
        return np.where(np.isnan(typical), own, np.fmax(typical, self.scale_floor))

    def row_scales(self, features: pd.DataFrame | None, rows: int, entities: Sequence[str] | None = None) -> np.ndarray:
        """(rows, 1): what each row's widths are multiplied by (ones for absolute widths)."""
        if not self.scale_columns:
            return np.ones((rows, 1))
        if features is None:
            raise ValueError("adaptive bands need each row's features (its recent target lags)")
        return self.units(movement(features[list(self.scale_columns)].to_numpy(dtype=np.float64)), entities)

    def half_widths(self, level: float, entities: Sequence[str] | None, rows: int) -> np.ndarray:
        """(rows, H) half-widths at ``level``: each row's entity's own, else the dataset's times the
        entity's error level."""
        key = level_key(level)
        shared = np.asarray(self.widths[key], dtype=np.float64)
        if entities is None or not (self.by_entity or self.entity_level):
            return np.broadcast_to(shared, (rows, shared.size))
        return np.asarray(
            [self.by_entity.get(e, {}).get(key, shared * self.entity_level.get(e, 1.0)) for e in entities],
            dtype=np.float64,
        )

    def bands(
        self, point: np.ndarray, entities: Sequence[str] | None = None, features: pd.DataFrame | None = None
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """Lower and upper bounds (each shaped like ``point``, (rows, H)) per level; adaptive widths
        are scaled by each row's recent movement, taken from ``features``."""
        out = {}
        scales = self.row_scales(features, point.shape[0], entities)
        for level in self.levels:
            half = self.half_widths(level, entities, point.shape[0]) * scales
            out[level] = (point - half, point + half)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": CONFORMAL,
            "levels": list(self.levels),
            "errors_per_step": self.errors_per_step,
            "widths": self.widths,
            "by_entity": self.by_entity,
            "scale_columns": list(self.scale_columns),
            "scale_floor": self.scale_floor,
            "entity_movement": self.entity_movement,
            "entity_level": self.entity_level,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            levels=tuple(float(level) for level in data["levels"]),
            widths={k: [float(v) for v in values] for k, values in data["widths"].items()},
            by_entity={
                entity: {k: [float(v) for v in values] for k, values in levels.items()}
                for entity, levels in data.get("by_entity", {}).items()
            },
            errors_per_step=int(data["errors_per_step"]),
            scale_columns=tuple(data.get("scale_columns", ())),
            scale_floor=float(data.get("scale_floor", 0.0)),
            entity_movement={str(k): float(v) for k, v in data.get("entity_movement", {}).items()},
            entity_level={str(k): float(v) for k, v in data.get("entity_level", {}).items()},
        )

    def save(self, directory: Path) -> None:
        (directory / INTERVALS_FILE).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, directory: Path) -> Calibration | None:
        """The bundle's calibration, or None for a version registered without one (point forecasts only)."""
        path = directory / INTERVALS_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls.from_dict(data) if data.get("method", CONFORMAL) == CONFORMAL else None


def calibrate(
    errors: np.ndarray,
    entities: np.ndarray,
    levels: Sequence[float],
    min_entity_errors: int,
    scales: np.ndarray | None = None,
    scale_columns: Sequence[str] = (),
) -> Calibration:
    """Widths from out-of-sample ``errors`` (n, H; actual minus forecast) whose rows belong to
    ``entities`` (n,). Rows with a missing error at some step still count at the others. With
    ``scale_columns``, adaptive widths: each row's error over its movement ``scales`` (n,) first."""
    if errors.ndim != 2 or errors.shape[0] != len(entities) or errors.shape[0] == 0:
        raise ValueError(f"need a (rows, H) array of errors with one entity per row, got {errors.shape}")
    floor = 0.0
    labels = np.asarray(entities).astype(str)
    typical: dict[str, float] = {}
    if scale_columns:
        if scales is None or len(scales) != len(errors):
            raise ValueError("adaptive widths need one movement per row of errors")
        moved = np.asarray(scales, dtype=np.float64).reshape(-1, 1)
        median = float(np.nanmedian(moved)) if np.isfinite(moved).any() else 0.0
        floor = 0.1 * median if median > 0 else 1.0
        for entity, rows in _rows_by_entity(labels):
            own = moved[rows]
            own = own[np.isfinite(own)]
            # the median; the mean where most rows did not move at all (a series that steps now and then)
            middle = float(np.median(own)) if own.size else 0.0
            middle = middle if middle > 0 else float(own.mean()) if own.size else 0.0
            if middle > 0:
                typical[entity] = middle
        unit = Calibration((), {}, {}, 0, tuple(scale_columns), floor, typical).units(moved, labels.tolist())
        errors = errors / unit

    def widths(block: np.ndarray) -> dict[str, list[float]]:
        return {level_key(a): _nan_aware_width(block, a).tolist() for a in levels}

    by_entity = {}
    for entity, rows in _rows_by_entity(labels):
        block = errors[rows]
        if int(np.isfinite(block).sum(axis=0).min()) >= min_entity_errors:
            by_entity[entity] = widths(block)
    level = error_levels(errors, labels)
    per_row = np.asarray([level.get(label, 1.0) for label in labels.tolist()], dtype=np.float64)[:, None]
    return Calibration(
        levels=tuple(sorted(levels)),
        widths=widths(errors / per_row),
        by_entity=by_entity,
        errors_per_step=int(np.isfinite(errors).sum(axis=0).min()),
        scale_columns=tuple(scale_columns),
        scale_floor=floor,
        entity_movement=typical,
        entity_level={entity: ratio for entity, ratio in level.items() if entity not in by_entity},
    )


def _rows_by_entity(labels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each entity (sorted) with the positions of its rows, in their order: one sort of the labels,
    where a mask per entity would walk every row once per entity (a calibration of a hundred
    thousand series' errors)."""
    names, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=names.size))])
    return [(str(name), order[bounds[k] : bounds[k + 1]]) for k, name in enumerate(names.tolist())]


def error_levels(errors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Per entity with :data:`MIN_LEVEL_ROWS` rows of errors: its mean absolute error over the median
    of those means (the dataset's widths are taken in, and multiplied by, these ratios)."""
    names, inverse = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    absolute = np.abs(errors)
    known = np.isfinite(absolute)
    total = np.bincount(inverse, weights=np.where(known, absolute, 0.0).sum(axis=1), minlength=names.size)
    count = np.bincount(inverse, weights=known.sum(axis=1), minlength=names.size)
    rows = np.bincount(inverse, minlength=names.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    enough = (rows >= MIN_LEVEL_ROWS) & (count > 0) & (mean > 0)
    if not enough.any():
        return {}
    middle = float(np.median(mean[enough]))
    return {str(name): float(value / middle) for name, value in zip(names[enough], mean[enough], strict=True)}


def _nan_aware_width(errors: np.ndarray, level: float) -> np.ndarray:
    if np.isfinite(errors).all():
        return conformal_width(errors, level)
    columns = [col[np.isfinite(col)] for col in errors.T]
    return np.asarray([conformal_width(col[:, None], level)[0] if col.size else np.nan for col in columns])


@dataclass(frozen=True)
class BandScores:
    """Elementwise scores of bands against actuals (each shaped like the actuals)."""

    inside: np.ndarray  # lower <= actual <= upper
    width: np.ndarray  # upper - lower
    interval_score: np.ndarray  # width + 2 / (1 - level) x the distance outside the band (Winkler)


def score_bands(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, level: float) -> BandScores:
    """Coverage, width and interval score of ``level`` bands: the same arithmetic for the gate's
    holdout, the daily scoring of stored forecasts and the benchmark's test split."""
    inside = (lower <= actual) & (actual <= upper)
    width = upper - lower
    miss = np.maximum(lower - actual, 0.0) + np.maximum(actual - upper, 0.0)
    return BandScores(inside=inside, width=width, interval_score=width + 2.0 / (1.0 - level) * miss)
