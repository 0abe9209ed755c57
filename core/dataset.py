"""The dataset config: one YAML file describes a forecasting dataset to the whole platform.

Nothing outside this schema knows about ETT. Another dataset of the same shape (hourly or other
regular series per entity, one numeric target, numeric covariates) runs through the same commands by
pointing them at its own YAML file. The docs site's dataset config reference is generated from these
models (their fields, types, defaults and descriptions), so describe a new field here.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.frequency import Frequency
from core.objects import is_remote, read_object
from core.source_policy import SourcePolicyError, check, parse

if TYPE_CHECKING:
    from core.settings import Settings


class Layout(StrEnum):
    WIDE_PER_ENTITY = "wide_per_entity"  # one file per entity, no entity column
    LONG = "long"  # one file, an entity column tells rows apart


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the raw data is read: local paths or ``s3://`` URIs, both checked against the source policy."""

    layout: Layout = Field(
        description="wide_per_entity: one file per entity (uris, no entity column); long: one file with an entity "
        "column (uri)."
    )
    format: str = Field(default="csv", pattern="^(csv|parquet)$", description="csv or parquet.")
    uris: dict[str, str] = Field(default_factory=dict, description="wide_per_entity: entity id -> file URI.")
    uri: str | None = Field(default=None, description="long: the one file's URI.")
    timestamp_format: str | None = Field(
        default=None, description="strptime format of the timestamp column; None: pandas infers it."
    )

    @model_validator(mode="after")
    def _layout_matches(self) -> SourceConfig:
        if self.layout is Layout.WIDE_PER_ENTITY and not self.uris:
            raise ValueError("layout wide_per_entity needs 'uris' (entity id -> file)")
        if self.layout is Layout.LONG and not self.uri:
            raise ValueError("layout long needs 'uri'")
        return self


class QualityConfig(_Strict):
    """The data check: the Great Expectations suite, built from these bounds, that a landed day must pass."""

    value_ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="{column: [min, max]} of the target and covariates."
    )
    max_gap: timedelta = Field(description="Largest allowed step between consecutive rows.")
    min_rows: int = Field(default=1, description="Fewest rows of a landed partition.")
    max_rows: int = Field(default=100_000_000, description="Most rows of a landed partition.")
    max_age: timedelta = Field(
        description="Freshness: the newest row is at most this old at the end of the logical date."
    )


class FeatureConfig(_Strict):
    """The features built from the raw columns, one Feast feature view that training and serving share."""

    target_lags: list[int] | None = Field(
        default=None,
        description="Default: 0..seasonal_period-1 and one week back; a list given must hold 0..seasonal_period-1 "
        "(seasonal naive, every gate's baseline, forecasts from them).",
    )
    covariate_lags: list[int] = Field(default_factory=lambda: [0, 1, 24], description="Lags (steps) of each covariate.")
    rolling_windows: list[int] = Field(
        default_factory=lambda: [24, 168], description="Windows (steps) of the target's rolling mean and std."
    )
    calendar: list[str] = Field(
        default_factory=lambda: ["hour", "day_of_week", "month"],
        description="Calendar values among hour, day_of_week, day_of_month, week_of_year, month, quarter.",
    )
    ttl: timedelta = Field(default=timedelta(days=7), description="Feast feature view TTL (look-back of joins).")
    history: int | None = Field(
        default=None,
        ge=2,
        description="Steps of the target's recent values the per-series (statistical) families forecast from. "
        "Default: the largest of 336, eight seasons and four horizons.",
    )

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"hour", "day_of_week", "day_of_month", "week_of_year", "month", "quarter"}
        if unknown:
            raise ValueError(f"unknown calendar features: {sorted(unknown)}")
        return value


class BacktestConfig(_Strict):
    """The rolling-origin backtest: expanding window, a gap of at least the horizon before each test fold."""

    folds: int = Field(default=4, ge=1, description="Test folds.")
    test_size: int = Field(default=168, ge=1, description="Rows per entity in each test fold.")
    gap: int | None = Field(default=None, description="Rows between train and test; >= horizon.")


class SelectionConfig(_Strict):
    """The ``selection`` family: candidates backtested on the same folds, then a choice among them."""

    candidates: list[str] = Field(
        default_factory=lambda: ["naive", "seasonal_naive", "auto_ets", "auto_theta", "lightgbm"],
        min_length=1,
        description="The families to choose among.",
    )
    method: Literal["best", "per_series", "combination"] = Field(
        default="per_series",
        description="best: one candidate for the dataset; per_series: each series its best (the dataset's "
        "where it has fewer than min_errors backtest rows); combination: each series its top_k combined.",
    )
    min_errors: int = Field(default=48, ge=1, description="Backtest rows a series needs for a choice of its own.")
    top_k: int = Field(default=3, ge=1, description="Candidates a combination takes.")
    combine: Literal["median", "mean", "weighted"] = Field(
        default="median",
        description="How a combination combines: the median or mean step by step, or weighted: each candidate "
        "by the inverse of its squared backtest MASE on the series (the dataset's mean MASE for series without a "
        "choice of their own; Bates and Granger's inverse-variance weights), so a candidate half as wrong counts "
        "four times as much.",
    )


class TrainingConfig(_Strict):
    """What a training run fits on, and with which parameters."""

    window: timedelta | None = Field(default=None, description="History used for training; None: all of it.")
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per model family: keyword arguments.")
    selection: SelectionConfig = Field(default_factory=SelectionConfig, description="The selection family's choice.")
    max_rows: int | None = Field(
        default=2_000_000,
        ge=1,
        description="The most training rows a model of all series that learns from feature rows (the tabular "
        "families, naive) reads: past it, every test row of the backtest and a share of each series' older rows, "
        "drawn by a hash of (entity, time). Models per series read every row. None: every row.",
    )
    refit: bool = Field(
        default=True,
        description="Serve a model fitted on every labelled row: the training run also fits the same model (a "
        "selection: the same choice) on the rows the promotion holdout kept out, and once the gates pass on the "
        "evaluated fit, that refit is registered and promoted. false: the evaluated fit itself is served.",
    )

    def selection_with(self, params: dict[str, Any] | None = None) -> SelectionConfig:
        """The selection family's choice with ``params`` (e.g. the run's) over the config's, validated."""
        merged = {**self.selection.model_dump(), **self.params.get("selection", {}), **(params or {})}
        return SelectionConfig.model_validate(merged)


class IntervalConfig(_Strict):
    """Prediction intervals: split-conformal bands from the backtest's out-of-sample errors, or the
    family's own quantile objective."""

    method: Literal["conformal", "quantile"] = Field(
        default="conformal",
        description="conformal: half-widths per step (and entity) from the backtest's out-of-sample errors, for "
        "every family; quantile: one more model per band edge, fitted with the family's quantile objective "
        "(LightGBM quantile, XGBoost reg:quantileerror, pinball loss for nlinear and dlinear); a family "
        "without one (seasonal_naive) keeps conformal bands.",
    )

    levels: list[float] = Field(
        default_factory=lambda: [0.8, 0.95],
        min_length=1,
        description="Nominal coverages of the bands every forecast carries, each strictly between 0 and 1.",
    )
    min_entity_errors: int = Field(
        default=100,
        ge=1,
        description="Out-of-sample errors per step an entity needs for bands of its own; fewer: the dataset's.",
    )
    adaptive: bool = Field(
        default=True,
        description="Conformal widths in units of each row's recent movement (the mean absolute one-step change "
        "of the target's newest consecutive lags): wider where the series is moving more now, narrower where it "
        "is calm, rather than one width per step for every row.",
    )

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[float]) -> list[float]:
        if any(not 0 < level < 1 for level in value):
            raise ValueError(f"interval levels must lie strictly between 0 and 1: {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"interval levels must differ: {value}")
        return sorted(value)


class TuningConfig(_Strict):
    """Optuna search spaces per family: name -> {low, high, log?, int?}."""

    spaces: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Per family: {param: {low, high, log?, int?}} or {param: {choices: [...]}}; every family has "
        "defaults (model_training/tuning.py); for XGBoost n_estimators' high is the cap of rounds.",
    )
    early_stopping_rounds: int = Field(
        default=20,
        ge=1,
        description="A family tuned round by round stops a trial once its folds' mean MAE has not improved for "
        "this many rounds.",
    )


class PromotionConfig(_Strict):
    """The gates a challenger passes to become champion, and the daily checks that watch the champion."""

    min_improvement: float = Field(
        default=0.0, ge=0, lt=1, description="Challenger MAE must be <= champion MAE * (1 - this)."
    )
    holdout: timedelta = Field(
        default=timedelta(days=14),
        description="The newest span of the training window, kept out of training: champion and challenger are "
        "scored on the same rows of it.",
    )
    coverage_tolerance: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Champion/challenger gate: the challenger's bands must cover the holdout within this much of "
        "each nominal level (e.g. 0.05: 80% bands covering 75-85%); None: coverage is reported, not demanded.",
    )
    max_drift_share: float = Field(default=0.5, ge=0, le=1, description="Drift gate: share of drifted features.")
    max_drifted_entities: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Drift gate and monitor: drift counts when more than this share of the entities with a verdict "
        "have a drift share above max_drift_share (0.1: any one of fewer than ten). With many series some drift by "
        "chance every day; a gate on any one of them would never pass.",
    )
    drift_window: timedelta = Field(
        default=timedelta(days=7),
        description="Drift gate and monitor: the 'current' window, the newest rows the service forecasts from.",
    )
    drift_reference: timedelta | None = Field(
        default=None,
        description="Drift gate and monitor: the span of the newest rows the version was fit on that the current "
        "window is judged against, ending before the current window starts (the two never share a row); None: "
        "holdout + drift_window.",
    )
    # An effect size, not a p-value: features of a time series are autocorrelated (a window of lags is
    # a few independent values, not hundreds), so p-value tests such as Evidently's default KS flag
    # drift in almost any window with many rows.
    drift_method: str | None = Field(
        default="wasserstein",
        description="Evidently stat test per feature (e.g. wasserstein, psi, ks); None: Evidently's default.",
    )
    drift_threshold: float | None = Field(
        default=1.0,
        description="Threshold of drift_method (wasserstein: distance in reference standard deviations); "
        "None: its default. Calibrate with python -m model_validation calibrate-drift.",
    )
    min_drift_rows: int = Field(default=100, ge=1, description="Fewer rows: 'not enough data', no verdict.")
    drift_reports: int = Field(
        default=5,
        ge=0,
        description="Evidently's HTML report for this many entities, those with the largest drift shares (a "
        "report draws a figure per feature, about a second and a half per entity); every entity's shares and "
        "scores are recorded either way.",
    )
    drift_relative_levels: bool = Field(
        default=True,
        description="Drift is judged on the target's lags and rolling means as changes from its current value "
        "(what the models learn from), the current value left out; False: on the raw levels.",
    )
    drift_consecutive_checks: int = Field(
        default=3, ge=1, description="Drift monitor: retrain after this many drifted days of new data in a row."
    )
    backtest_error_ratio: float = Field(
        default=1.5, gt=1, description="Nightly backtest fails past this ratio of the registered MAE."
    )

    @property
    def drift_reference_span(self) -> timedelta:
        """:attr:`drift_reference`, or by default as much as the holdout and the current window together."""
        return self.drift_reference if self.drift_reference is not None else self.holdout + self.drift_window


class DailyConfig(_Strict):
    """The daily loop: when each day's data lands (the ``ingest_<name>`` DAG) and from which day."""

    schedule: str = Field(
        default="0 1 * * *",
        description="Cron (UTC) of the daily data DAG; a run lands the day (the data interval) that has just ended.",
    )
    start: date = Field(default=date(2024, 1, 1), description="The first data date the daily DAG runs for.")
    history_end: date | None = Field(
        default=None,
        description="The newest day of a source that no longer grows (a published history such as ETT): the "
        "retraining form's default training window end, so a run with the form's defaults trains on data that "
        "exists. None: the source grows every day and a run trains up to its own date.",
    )
    end: date | None = Field(
        default=None,
        description="The last data date the daily DAG is scheduled for (Airflow's end_date: no run is scheduled "
        "for a later day; one triggered for a day up to it still runs). None: no end.",
    )
    catchup: bool = Field(
        default=False,
        description="Run the days between start and now that have no run yet (False: only the newest; a "
        "backfill fills older ones on request).",
    )
    max_days_above_naive: int = Field(
        default=3,
        ge=1,
        description="Scoring: alert when the batch forecasts' realized MAE was above seasonal naive's on the same "
        "targets this many days in a row.",
    )


PUBLISHED_BASE_DIR = "published_base_dir"  # the key :meth:`DatasetConfig.to_yaml` adds


class DatasetConfig(_Strict):
    """A forecasting dataset: regular series per entity, one numeric target, numeric covariates."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Identifier; names the DAGs (ingest_<name>, ...), the Feast views and the registered model "
        "(<name>_forecaster).",
    )
    description: str = Field(default="", description="Free text about the dataset.")
    entity_column: str = Field(description="The series key (e.g. transformer_id).")
    timestamp_column: str = Field(description="The time column.")
    frequency: Frequency = Field(
        description="The regular step between rows: a fixed one (PT1H, P1D, P1W, PT15M) or a calendar one whose "
        "length varies (P1M, P3M, P1Y; ME, QE, YE for the period's last day; W-SUN for weeks on another day than "
        "Monday)."
    )
    target: str = Field(description="The column to forecast.")
    features: list[str] = Field(description="The numeric covariates.")
    horizon: int = Field(ge=1, description="Steps to forecast.")
    seasonal_period: int = Field(ge=1, description="Steps in a season (the seasonal-naive baseline's look-back).")
    seasonal_periods: list[int] | None = Field(
        default=None,
        description="Every season (steps) of the multi-season family (mstl). Default: seasonal_period and, "
        "where a week is a longer whole number of steps, the week (hourly: 24 and 168).",
    )
    source: SourceConfig = Field(description="Where the raw data is read.")
    quality: QualityConfig = Field(description="The data check of each landed day.")
    feature_engineering: FeatureConfig = Field(default_factory=FeatureConfig, description="The features.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Training window, backtest, params.")
    tuning: TuningConfig = Field(default_factory=TuningConfig, description="Optuna's search.")
    promotion: PromotionConfig = Field(default_factory=PromotionConfig, description="Gates and daily checks.")
    intervals: IntervalConfig = Field(default_factory=IntervalConfig, description="The bands of every forecast.")
    daily: DailyConfig = Field(default_factory=DailyConfig, description="The daily loop's schedule.")
    # Folder of the YAML file: relative source paths are resolved against it.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        names = [self.entity_column, self.timestamp_column, self.target, *self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"entity, timestamp, target and feature columns must differ: {names}")
        unknown = set(self.quality.value_ranges) - {self.target, *self.features}
        if unknown:
            raise ValueError(f"value_ranges name unknown columns: {sorted(unknown)}")
        lags = self.feature_engineering.target_lags
        missing = sorted(set(range(self.seasonal_period)) - set(lags or range(self.seasonal_period)))
        if missing:
            raise ValueError(
                f"feature_engineering.target_lags must hold 0..{self.seasonal_period - 1} (the seasonal period "
                f"{self.seasonal_period}): seasonal naive, the baseline every gate compares with, forecasts from "
                f"them; missing {missing}"
            )
        gap = self.training.backtest.gap
        if gap is not None and gap < self.horizon:
            raise ValueError(f"backtest gap ({gap}) must be >= horizon ({self.horizon})")
        holdout, window = self.promotion.holdout, self.training.window
        if holdout < self.frequency.shortest:
            raise ValueError(f"promotion.holdout ({holdout}) must hold at least one period ({self.frequency})")
        if window is not None and holdout >= window / 2:
            raise ValueError(f"promotion.holdout ({holdout}) must be under half the training window ({window})")
        for name in ("drift_window", "drift_reference"):
            span = getattr(self.promotion, name)
            if span is not None and span < self.frequency.shortest:
                raise ValueError(f"promotion.{name} ({span}) must hold at least one period ({self.frequency})")
        return self

    @property
    def target_lags(self) -> list[int]:
        lags = self.feature_engineering.target_lags
        if lags is None:
            week = self.frequency.whole_steps(timedelta(days=7))
            lags = sorted({*range(self.seasonal_period), *([week] if week else [])})
        return lags

    @property
    def seasonalities(self) -> list[int]:
        """The seasons (steps) a multi-season model decomposes, shortest first (``seasonal_periods``)."""
        if self.seasonal_periods is not None:
            return sorted(set(self.seasonal_periods))
        weekly = self.frequency.whole_steps(timedelta(days=7)) or 0
        return [self.seasonal_period, weekly] if weekly > self.seasonal_period else [self.seasonal_period]

    @property
    def history_length(self) -> int:
        """Steps of recent target values a per-series family forecasts from (the history feature)."""
        configured = self.feature_engineering.history
        return configured if configured is not None else max(336, 8 * self.seasonal_period, 4 * self.horizon)

    @property
    def backtest_gap(self) -> int:
        return max(self.training.backtest.gap or self.horizon, self.horizon)

    def with_horizon(self, horizon: int | None) -> DatasetConfig:
        """The same dataset forecast over another horizon (a retraining run's override)."""
        if horizon is None or horizon == self.horizon:
            return self
        return self.model_copy(update={"horizon": horizon})

    @property
    def raw_columns(self) -> list[str]:
        """Columns of the landing table, in order."""
        return [self.entity_column, self.timestamp_column, self.target, *self.features]

    def resolve_uri(self, uri: str) -> str:
        """Relative local paths are taken relative to the config file's folder."""
        if "://" in uri or Path(uri).is_absolute():
            return uri
        return str((self.base_dir / uri).resolve())

    def check_sources(self, settings: Settings | None) -> None:
        """Every source through the source policy (:mod:`core.source_policy`), each resolved as it will be
        read; without settings only what no setting could allow is refused."""
        named = [(f"source.uris[{entity!r}]", uri) for entity, uri in self.source.uris.items()]
        if self.source.uri is not None:
            named.append(("source.uri", self.source.uri))
        for where, uri in named:
            resolved = self.resolve_uri(uri)
            try:
                if settings is None:
                    parse(resolved)
                else:
                    check(resolved, settings)
            except SourcePolicyError as exc:
                raise SourcePolicyError(f"dataset {self.name!r}, {where} = {uri!r}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, settings: Settings | None = None) -> DatasetConfig:
        """Load and check a config; its sources go through the source policy here, so a config that
        names a forbidden source fails before any task runs (``SourcePolicyError``, a ValueError).

        With ``settings`` the full policy applies (schemes, buckets, roots); without, only what no
        setting could allow is refused (other schemes, hosts in file:// URIs). Reads check again.
        ``path`` may be an ``s3://`` object: a copy published by :meth:`to_yaml` for a training pod.
        """
        if isinstance(path, str) and is_remote(path):
            from core.settings import get_settings

            raw = yaml.safe_load(read_object(path, settings or get_settings()))
            base_dir: Path | None = None
        else:
            path = Path(path)
            try:
                raw = yaml.safe_load(path.read_text())
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"dataset config not found: {path}") from exc
            base_dir = path.resolve().parent
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a dataset config is a YAML mapping")
        # A published copy names the folder its relative sources were written against; a file is its own.
        published_from = raw.pop(PUBLISHED_BASE_DIR, None)
        if base_dir is None or published_from is not None:
            base_dir = Path(published_from or ".")
        config = cls.model_validate({**raw, "base_dir": base_dir})
        try:
            config.check_sources(settings)
        except SourcePolicyError as exc:
            raise SourcePolicyError(f"{path}: {exc}") from None
        return config

    def to_yaml(self) -> str:
        """This config as YAML that :meth:`from_yaml` reads back equal from anywhere (an object a pod
        reads): every field, the overridden horizon included, and the folder its relative sources
        are resolved against."""
        return yaml.safe_dump({**self.model_dump(mode="json"), PUBLISHED_BASE_DIR: str(self.base_dir)}, sort_keys=False)
