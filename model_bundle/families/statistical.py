"""Statistical families: one statsforecast model per series, forecasting from the series' newest values.

Each series gets its own fitted model (AutoETS, AutoTheta, AutoARIMA, the random walk with drift,
or MSTL: every season of the dataset's ``seasonalities`` taken out by LOESS, the rest forecast by a
non-seasonal AutoETS). A forecast never refits: the fitted parameters run over the newest values (statsforecast's
``forward``), which the row brings in its history column (:mod:`core.history`):

* Where the history reaches back to the end of training, the model continues from there: ETS
  exactly, from its state at the end of training (statsforecast's ``forward`` would restart from the
  initial state, whose season and level belong to the first training value); ARIMA filters the
  training tail and the new values with its fitted coefficients (within 0.1 % of filtering the
  whole series: the shorter series starts its conditional sums elsewhere).
* Where it does not (a champion older than the history), the parameters run over the history alone:
  ARIMA's forecast is the same, ETS's and Theta's start from their fitted initial states and converge
  over the window.
* MSTL takes each season's last cycle as decomposed at the end of training out of the newest values,
  runs its trend model's fitted parameters over the rest and adds the cycles back (its own forecast
  adds them the same way); the history is not decomposed again, which would be a fit per request.

A model saves as JSON: statsforecast's fitted dict with numpy arrays spelled out and the arrays that
only fitting used (residuals, fitted values, the state path) left out; nothing is pickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

# family -> the statsforecast class that fits and forwards each series.
MODELS: dict[str, str] = {
    "mstl": "MSTL",
    "auto_ets": "AutoETS",
    "auto_theta": "AutoTheta",
    "auto_arima": "AutoARIMA",
    "random_walk_with_drift": "RandomWalkWithDrift",
}
SEASONAL = {"auto_ets", "auto_theta", "auto_arima"}


@dataclass(frozen=True)
class Step:
    """The grid step between a series' values, as much of it as counting steps needs: a fixed length
    in seconds, or a number of calendar months (a month, a quarter: 3, a year: 12) whose lengths
    differ. (The platform's :class:`core.frequency.Frequency` knows the whole grid; a bundle carries
    only this.)"""

    seconds: float | None = None
    months: int | None = None

    def between(self, start: pd.Timestamp, end: pd.Timestamp) -> int:
        """Steps from ``start`` to ``end``, both on the grid."""
        if self.months:
            return ((end.year - start.year) * 12 + end.month - start.month) // self.months
        assert self.seconds is not None
        return round((end - start) / pd.Timedelta(seconds=self.seconds))


# The rows' time column (``core.columns.EVENT_TIMESTAMP``; the bundle's code imports nothing of the
# platform): the newest value of each row's history is at this time.
TIME_COLUMN = "event_timestamp"
# ETS continues from its state this many training values before the end, running over them again.
ETS_RERUN = 4
# Arrays of a fitted model that ``forward`` never reads: the training series' residuals, fitted
# values and state path; ARIMA's state-space matrices (``forward`` rebuilds them from the
# coefficients; it does read the training series and regressors, for the drift's time index).
_FIT_ONLY = {"residuals", "fitted", "actual_residuals", "states", "model"}


def encode(value: Any) -> Any:
    """JSON for a statsforecast fitted dict: arrays, numpy scalars and tuples tagged so that
    :func:`decode` gives back the same types."""
    if isinstance(value, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray):
        flat = [encode(v) for v in value.ravel().tolist()]
        return {"__ndarray__": flat, "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return {"__scalar__": encode(value.item()), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} of a fitted model")


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__dict__" in value:
        return {decode(k): decode(v) for k, v in value["__dict__"]}
    if "__ndarray__" in value:
        flat = [decode(v) for v in value["__ndarray__"]]
        return np.array(flat, dtype=value["dtype"]).reshape(value["shape"])
    if "__scalar__" in value:
        return np.dtype(value["dtype"]).type(decode(value["__scalar__"]))
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    raise ValueError(f"not a saved model value: {sorted(value)}")


def filled(values: np.ndarray) -> np.ndarray:
    """The values from the first known one on, inner gaps filled linearly (the models take no NaN)."""
    known = np.flatnonzero(~np.isnan(values))
    if not len(known):
        return np.empty(0)
    values = values[known[0] :]
    missing = np.isnan(values)
    if missing.any():
        index = np.arange(len(values))
        values = values.copy()
        values[missing] = np.interp(index[missing], index[~missing], values[~missing])
    return values


def _ets_fit(fitted: dict[str, Any]) -> dict[str, Any]:
    """What an ETS fit keeps: ``forward``'s parameters, and the state a few values before the end of
    training to continue from (continuing always runs over some values, the tail's last ones, as
    ``forward`` needs: with one value its state path collapses)."""
    kept = {k: v for k, v in fitted.items() if k not in _FIT_ONLY}
    return {**kept, "end_state": np.asarray(fitted["states"][-(ETS_RERUN + 1)], dtype=np.float64)}


def _continued(fitted: dict[str, Any], recent: np.ndarray, new: int) -> tuple[dict[str, Any], np.ndarray]:
    """An ETS fit that starts from its state at the end of training, and the values it runs over:
    the last few of training and the ``new`` ones since."""
    started = {**fitted, "par": np.concatenate([np.asarray(fitted["par"])[:4], fitted["end_state"]])}
    return started, recent[-(new + ETS_RERUN) :]


class SeriesModel:
    """One series' fitted model: what it continues from (the training tail and its end) and how."""

    def __init__(self, family: str, season_length: int, fitted: dict[str, Any], tail: np.ndarray, end: pd.Timestamp):
        self.family, self.season_length = family, season_length
        self.fitted, self.tail, self.end = fitted, np.asarray(tail, dtype=np.float64), end

    @classmethod
    def from_fit(
        cls, family: str, season_length: int, model: Any, values: np.ndarray, end: pd.Timestamp, keep: int
    ) -> SeriesModel:
        if family == "mstl":  # the trend model's fit, and each season's last cycle as decomposed
            trend = _ets_fit(model.trend_forecaster.model_)
            seasons = [int(s) for s in np.atleast_1d(model.season_length)]
            parts = model.model_
            columns = ["seasonal"] if len(seasons) == 1 else [f"seasonal{s}" for s in seasons]
            profiles = [parts[c].to_numpy(dtype=np.float64)[-s:] for c, s in zip(columns, seasons, strict=True)]
            fitted_mstl = {"trend": trend, "seasons": seasons, "profiles": profiles}
            return cls(family, season_length, fitted_mstl, values[-keep:], end)
        if family == "auto_ets":
            return cls(family, season_length, _ets_fit(model.model_), values[-keep:], end)
        fitted = {k: v for k, v in model.model_.items() if k not in _FIT_ONLY}
        return cls(family, season_length, fitted, values[-keep:], end)

    def _statsforecast(self, fitted: dict[str, Any]) -> Any:
        from statsforecast import models

        if self.family == "mstl":  # ``fitted`` is its trend model's
            model = models.AutoETS(model="ZZN")
            model.model_ = fitted
            return model
        options = {"season_length": self.season_length} if self.family in SEASONAL else {}
        model = getattr(models, MODELS[self.family])(**options)
        model.model_ = fitted
        return model

    def forecast(self, window: np.ndarray, window_end: pd.Timestamp, step: Step, horizon: int) -> np.ndarray:
        """H values after ``window_end`` from ``window`` (the newest value at ``window_end``)."""
        new = step.between(self.end, window_end)  # values since training ended
        continues = 0 <= new <= len(window)
        if not np.isfinite(window).any():  # nothing to forecast from
            return np.full(horizon, np.nan)
        if self.family == "random_walk_with_drift":
            last = filled(window)
            return float(last[-1]) + float(np.ravel(self.fitted["slope"])[0]) * np.arange(1, horizon + 1)
        if continues:
            recent = filled(np.concatenate([self.tail, window[len(window) - new :] if new else np.empty(0)]))
        else:
            recent = filled(window)
        if self.family == "mstl":
            return self._mstl(recent, new, continues, horizon)
        fitted, recent = (
            _continued(self.fitted, recent, new) if self.family == "auto_ets" and continues else (self.fitted, recent)
        )
        mean = self._statsforecast(fitted).forward(y=recent, h=horizon)["mean"]
        return np.asarray(mean, dtype=np.float64)

    def _mstl(self, recent: np.ndarray, new: int, continues: bool, horizon: int) -> np.ndarray:
        """MSTL without decomposing again: each season's last cycle at training's end, repeated, is taken
        out of ``recent`` (its newest value ``new`` steps after training's end) and added to the trend
        model's forecast of the rest, as MSTL's own forecast adds each season's last cycle."""
        offsets = np.arange(new - len(recent) + 1, new + 1)  # each value's steps after training's end
        ahead = np.arange(new + 1, new + horizon + 1)

        def seasonal(at: np.ndarray) -> np.ndarray:
            total = np.zeros(len(at))
            for season, profile in zip(self.fitted["seasons"], self.fitted["profiles"], strict=True):
                total += np.asarray(profile)[(at - 1) % season]
            return total

        fitted, adjusted = self.fitted["trend"], recent - seasonal(offsets)
        if continues:
            fitted, adjusted = _continued(fitted, adjusted, new)
        trend = self._statsforecast(fitted).forward(y=adjusted, h=horizon)["mean"]
        return np.asarray(trend, dtype=np.float64) + seasonal(ahead)

    def to_dict(self) -> dict[str, Any]:
        return {"fitted": encode(self.fitted), "tail": encode(self.tail), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, family: str, season_length: int, data: dict[str, Any]) -> SeriesModel:
        return cls(family, season_length, decode(data["fitted"]), decode(data["tail"]), pd.Timestamp(data["end"]))


class StatisticalForecaster:
    """Per-series statsforecast models behind the family interface: rows carry their entity, time and
    history; a series without a model of its own (one that appeared after training, or that its model
    could not fit) gets the last value."""

    family: ClassVar[str] = "statistical"
    serving_requirements: ClassVar[tuple[str, ...]] = ("statsforecast",)
    per_series: ClassVar[bool] = True

    def __init__(
        self,
        family: str,
        entity_column: str,
        history_column: str,
        horizon: int,
        step: Step,
        season_length: int,
        models: dict[str, SeriesModel] | None = None,
        skipped: dict[str, str] | None = None,
    ):
        if family not in MODELS:
            raise ValueError(f"unknown statistical family {family!r}; known: {sorted(MODELS)}")
        self.name, self.entity_column, self.history_column = family, entity_column, history_column
        self.horizon, self.step, self.season_length = horizon, step, season_length
        self.models = dict(models or {})
        self.skipped = dict(skipped or {})  # entity -> why its model was not fitted
        self.params: dict[str, Any] = {"model": MODELS[family], "season_length": season_length}

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        missing = {self.entity_column, TIME_COLUMN, self.history_column} - set(features.columns)
        if missing:
            raise KeyError(f"a per-series family forecasts from rows with {sorted(missing)}")
        out = np.empty((len(features), self.horizon))
        entities = features[self.entity_column].astype(str).to_numpy()
        stamps = pd.DatetimeIndex(features[TIME_COLUMN])
        if stamps.tz is None:  # MLflow's schema takes naive datetimes: the platform's are UTC
            stamps = stamps.tz_localize("UTC")
        windows = features[self.history_column]
        for row, (entity, stamp, window) in enumerate(zip(entities, stamps, windows, strict=True)):
            window = np.asarray(window, dtype=np.float64)
            model = self.models.get(entity)
            if model is None:
                last = filled(window)
                out[row] = last[-1] if len(last) else np.nan
                continue
            out[row] = model.forecast(window, stamp, self.step, self.horizon)
        return out

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "family": self.name,
            "entity_column": self.entity_column,
            "history_column": self.history_column,
            "horizon": self.horizon,
            "step_seconds": self.step.seconds,
            "step_months": self.step.months,
            "season_length": self.season_length,
            "skipped": self.skipped,
            "models": {entity: model.to_dict() for entity, model in self.models.items()},
        }
        (directory / "statistical.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> StatisticalForecaster:
        meta = json.loads((directory / "statistical.json").read_text())
        family, season = meta["family"], meta["season_length"]
        return cls(
            family=family,
            entity_column=meta["entity_column"],
            history_column=meta["history_column"],
            horizon=meta["horizon"],
            step=Step(seconds=meta["step_seconds"], months=meta.get("step_months")),
            season_length=season,
            models={e: SeriesModel.from_dict(family, season, m) for e, m in meta["models"].items()},
            skipped=meta["skipped"],
        )
