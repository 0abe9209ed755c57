"""The accuracy benchmark's protocol: its config (series, look-back, horizons, split, models, the
published numbers and the interval section), and the data it prescribes: each series split and
standardised with training statistics, cut into windows of ``lookback`` inputs and ``horizon``
targets, and the forecasts one fit makes of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.columns import EVENT_TIMESTAMP, lag_name
from core.dataset import DatasetConfig, FeatureConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Split(_Strict):
    train: int = Field(gt=0)
    validation: int = Field(gt=0)
    test: int = Field(gt=0)


class BenchmarkTuning(_Strict):
    horizon: int
    trials: int = Field(default=20, ge=0)
    families: list[str] = Field(default_factory=list)
    trials_per_family: dict[str, int] = Field(default_factory=dict)
    seed: int = 42


class Published(_Strict):
    source: str
    tolerance: float = 0.10
    # series -> model -> horizon -> [mse, mae]
    results: dict[str, dict[str, dict[int, tuple[float, float]]]] = Field(default_factory=dict)

    def lookup(self, series: str, model: str, horizon: int) -> tuple[float, float] | None:
        return self.results.get(series, {}).get(model, {}).get(horizon)


class MLForecastPeer(_Strict):
    """mlforecast's conformal intervals with one of our families' base learner and parameters.

    ``direct`` trains one model per step as our tree families do, so the two differ only in how the
    intervals are made; ``recursive`` (one model fed its own forecasts) costs about 1/H of it but is a
    different forecaster. ``n_windows`` windows of H steps end the history mlforecast is given; by
    default as many as the validation split holds, so its calibration model is trained on the
    training split and its errors come from the validation split, as ours do. ``differences``:
    mlforecast's ``Differences`` target transform (e.g. ``[1]``), so its trees learn changes rather than
    levels, as ours do (they forecast the change from the newest value); its lags then shrink by their
    sum, so it reads the same ``lookback`` values.
    """

    family: Literal["lightgbm"] = "lightgbm"
    strategy: Literal["direct", "recursive"] = "direct"
    method: Literal["conformal_distribution", "conformal_error"] = "conformal_distribution"
    n_windows: int | None = Field(default=None, ge=2)
    differences: list[int] = Field(default_factory=list)

    @property
    def model(self) -> str:
        return f"mlforecast-{self.family}"


class BenchmarkIntervals(_Strict):
    """Interval rows: which families, at which horizon and levels, scored on which test origins.

    Every row, ours and the peer's, is scored on the same test windows: every ``origin_stride``-th,
    starting with the first (1: all of them, the windows the point rows score).
    """

    horizon: int = Field(gt=0)
    levels: list[float] = Field(default_factory=lambda: [0.8, 0.95])
    families: list[str] = Field(min_length=1)
    tolerance: float = Field(default=0.02, gt=0)  # coverage within this of the nominal level
    origin_stride: int = Field(default=1, ge=1)
    mlforecast: MLForecastPeer | None = None

    @field_validator("levels")
    @classmethod
    def _levels_are_shares(cls, levels: list[float]) -> list[float]:
        if not levels or any(not 0 < level < 1 for level in levels):
            raise ValueError(f"levels must be shares between 0 and 1, got {levels}")
        return sorted(set(levels))


class BenchmarkConfig(_Strict):
    dataset: Path
    series: list[str]
    lookback: int = Field(gt=0)
    horizons: list[int]
    split: Split
    models: dict[str, list[int]]
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tuning: BenchmarkTuning | None = None
    published: Published | None = None
    intervals: BenchmarkIntervals | None = None

    @model_validator(mode="after")
    def _interval_families_run_at_their_horizon(self) -> BenchmarkConfig:
        """Interval rows reuse the point rows' fitted models, so each family must run at that horizon."""
        if self.intervals is not None:
            h = self.intervals.horizon
            missing = [f for f in self.intervals.families if h not in self.models.get(f, [])]
            if h not in self.horizons or missing:
                raise ValueError(f"intervals at horizon {h}: not in horizons {self.horizons} or not run by {missing}")
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> BenchmarkConfig:
        raw = yaml.safe_load(path.read_text())
        raw["dataset"] = (path.parent / raw["dataset"]).resolve()
        return cls.model_validate(raw)


@dataclass
class Windows:
    """Feature rows (lags of the scaled target) and their next-H targets for one split."""

    features: pd.DataFrame
    targets: np.ndarray


def window_dataset(dataset: DatasetConfig, lookback: int, horizon: int) -> DatasetConfig:
    """The source dataset reduced to what the protocol allows: the target's own past, nothing else."""
    features = FeatureConfig(
        target_lags=list(range(lookback)),
        covariate_lags=[],
        rolling_windows=[],
        calendar=[],
        ttl=dataset.frequency.nominal.to_pytimedelta(),
    )
    return dataset.model_copy(update={"features": [], "feature_engineering": features, "horizon": horizon})


def make_windows(values: np.ndarray, stamps: np.ndarray, target: str, lookback: int, horizon: int) -> Windows:
    """Every window of ``lookback`` inputs followed by ``horizon`` targets inside ``values``."""
    count = len(values) - lookback - horizon + 1
    if count < 1:
        raise ValueError(f"{len(values)} rows are too few for look-back {lookback} and horizon {horizon}")
    ends = np.arange(lookback - 1, lookback - 1 + count)  # index of each window's newest input
    columns = {lag_name(target, k): values[ends - k] for k in range(lookback)}
    features = pd.DataFrame(columns)
    features.insert(0, EVENT_TIMESTAMP, stamps[ends])
    targets = values[ends[:, None] + np.arange(1, horizon + 1)[None, :]]
    return Windows(features, targets)


@dataclass
class SplitSeries:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    train_stamps: np.ndarray
    validation_stamps: np.ndarray
    test_stamps: np.ndarray


def split_series(values: np.ndarray, stamps: np.ndarray, split: Split, lookback: int) -> SplitSeries:
    """Standardise with training statistics; validation and test start one look-back early."""
    n_train, n_val, n_test = split.train, split.validation, split.test
    if len(values) < n_train + n_val + n_test:
        raise ValueError(f"series has {len(values)} rows; the split needs {n_train + n_val + n_test}")
    mean, std = values[:n_train].mean(), values[:n_train].std()
    scaled = (values - mean) / std
    v0, t0, t1 = n_train - lookback, n_train + n_val - lookback, n_train + n_val + n_test
    return SplitSeries(
        train=scaled[:n_train],
        validation=scaled[v0 : n_train + n_val],
        test=scaled[t0:t1],
        train_stamps=stamps[:n_train],
        validation_stamps=stamps[v0 : n_train + n_val],
        test_stamps=stamps[t0:t1],
    )


@dataclass
class Fitted:
    """One fit's forecasts of the validation and test windows: the point rows score them, and the
    interval rows calibrate on the first and score the second, so nothing is fitted twice."""

    validation: np.ndarray
    test: np.ndarray | None
    seconds: float
