"""A small synthetic dataset of the ETT shape (hourly, per entity, a target driven by covariates)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT

ETT_CONFIG = PROJECT_ROOT / "configs" / "datasets" / "ett.yaml"
SYNTHETIC_END = date(2024, 3, 31)


def synthetic_frame(entities: int = 2, days: int = 50, seed: int = 7, end: date = SYNTHETIC_END) -> pd.DataFrame:
    """Hourly series with a daily cycle, a slow trend and noise; loads drive the target."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(end=pd.Timestamp(end) + pd.Timedelta(hours=23), periods=days * 24, freq="h")
    hours = np.arange(len(stamps))
    rows = []
    for e in range(entities):
        load = 10 + 3 * np.sin(2 * np.pi * hours / 24 + e) + rng.normal(0, 0.3, len(hours))
        aux = 5 + np.cos(2 * np.pi * hours / 168) + rng.normal(0, 0.2, len(hours))
        # A persistent but stationary level (AR(1)): a day-old value cannot know it, the latest one
        # does, and its distribution does not drift.
        shocks = rng.normal(0, 0.5, len(hours))
        level = np.zeros(len(hours))
        for i in range(1, len(hours)):
            level[i] = 0.9 * level[i - 1] + shocks[i]
        target = 20 + 0.8 * load + level + rng.normal(0, 0.2, len(hours))
        rows.append(
            pd.DataFrame(
                {
                    "site": f"site_{e}",
                    "ts": stamps.strftime("%Y-%m-%d %H:%M:%S"),
                    "load": load,
                    "aux": aux,
                    "temp": target,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def synthetic_config(source_uri: str, drift_reports: int = 0) -> dict[str, object]:
    """A long-layout dataset config, small enough to train in seconds. Its drift checks draw no HTML
    report unless asked (``drift_reports``): a report costs seconds of CPU per check, and only the
    tests that read one need it."""
    return {
        "name": "synthetic",
        "entity_column": "site",
        "timestamp_column": "ts",
        "frequency": "PT1H",
        "target": "temp",
        "features": ["load", "aux"],
        "horizon": 6,
        "seasonal_period": 24,
        "source": {"layout": "long", "format": "csv", "uri": source_uri},
        "quality": {
            "value_ranges": {"temp": [-50, 150], "load": [-100, 100], "aux": [-100, 100]},
            "max_gap": "PT3H",
            "min_rows": 100,
            "max_rows": 100000,
            "max_age": "P1D",
        },
        "feature_engineering": {"covariate_lags": [0, 1], "rolling_windows": [24], "ttl": "P2D"},
        "promotion": {
            "holdout": "P3D",
            # The newest three days against the six a version was fit on before them (the holdout and
            # the window: the default).
            "drift_window": "P3D",
            "min_drift_rows": 60,
            "drift_method": "wasserstein",
            "drift_threshold": 0.5,
            "drift_consecutive_checks": 2,
            "drift_reports": drift_reports,
        },
        # 2 folds of 24 rows: 48 errors per entity and step, enough here for each site's own bands
        "intervals": {"min_entity_errors": 40},
        # A published history: the retraining form's window end defaults to its newest day.
        "daily": {"history_end": SYNTHETIC_END.isoformat()},
        "training": {
            "window": "P30D",
            "backtest": {"folds": 2, "test_size": 24, "gap": 6},
            "params": {"xgboost": {"n_estimators": 15, "max_depth": 3, "learning_rate": 0.3}},
            "selection": {"candidates": ["naive", "seasonal_naive", "auto_theta"], "min_errors": 24},
        },
    }


def change_regime(frame: pd.DataFrame, rows: pd.Series, load_shift: float = 6.0, swing: float = 3.0) -> pd.DataFrame:
    """On ``rows`` of :func:`synthetic_frame`: a step in load, which the target follows, and the
    target's swings around its level ``swing`` times as wide. A step alone would be no drift to the
    models (they forecast changes from the current value); wider swings are."""
    out = frame.copy()
    out.loc[rows, "load"] += load_shift
    temp = out.loc[rows, "temp"]
    deviation = temp - temp.groupby(out.loc[rows, "site"]).transform("mean")
    out.loc[rows, "temp"] = temp + 0.8 * load_shift + (swing - 1.0) * deviation
    return out


def with_regime_change(frame: pd.DataFrame, days: int = 7, **change: float) -> pd.DataFrame:
    """The last ``days`` of :func:`synthetic_frame` after a regime change (:func:`change_regime`)."""
    stamps = pd.to_datetime(frame["ts"])
    return change_regime(frame, stamps > stamps.max() - pd.Timedelta(days=days), **change)


def training_frame(dataset: DatasetConfig) -> pd.DataFrame:
    """Features and labels of :func:`synthetic_frame`, built by the pipeline's functions, time-ordered."""
    from core.columns import EVENT_TIMESTAMP, label_names
    from feature_store.features import build_features
    from feature_store.training_set import build_labels

    raw = synthetic_frame()
    raw["ts"] = pd.to_datetime(raw["ts"], utc=True)
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=["site", EVENT_TIMESTAMP])
    return frame.dropna(subset=label_names(dataset)).sort_values(EVENT_TIMESTAMP).reset_index(drop=True)


def split_in_time(frame: pd.DataFrame, share: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    from core.columns import EVENT_TIMESTAMP

    cut = frame[EVENT_TIMESTAMP].quantile(share)
    return frame[frame[EVENT_TIMESTAMP] <= cut], frame[frame[EVENT_TIMESTAMP] > cut]


def write_dataset(
    directory: Path, frame: pd.DataFrame | None = None, source_uri: str | None = None, drift_reports: int = 0
) -> Path:
    """Write the CSV and its config (:func:`synthetic_config`) into ``directory``; returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else synthetic_frame()).to_csv(directory / "series.csv", index=False)
    config_path = directory / "synthetic.yaml"
    config_path.write_text(yaml.safe_dump(synthetic_config(source_uri or "series.csv", drift_reports)))
    return config_path


def random_walk_frame(series: int = 8, days: int = 3 * 365, seed: int = 11, end: date = SYNTHETIC_END) -> pd.DataFrame:
    """Daily levels that move on: random walks with a drift of their own per series, and a weekly
    ripple; no covariates. Their levels leave any earlier window behind, so only changes repeat."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")
    week = np.sin(2 * np.pi * np.arange(days) / 7)
    rows = []
    for s in range(series):
        drift = rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0])
        steps = drift + 0.5 * week + rng.normal(0, 1.0, days)
        rows.append(pd.DataFrame({"series": f"s{s}", "day": stamps, "value": 500.0 + np.cumsum(steps)}))
    return pd.concat(rows, ignore_index=True)


def write_random_walk_dataset(directory: Path, frame: pd.DataFrame | None = None) -> Path:
    """:func:`random_walk_frame` as a long CSV with its config, written as a new user would from the
    docs (docs/datasets.md): entity, timestamp and target columns, no covariates; returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else random_walk_frame()).to_csv(directory / "levels.csv", index=False)
    config = {
        "name": "levels",
        "entity_column": "series",
        "timestamp_column": "day",
        "frequency": "P1D",
        "target": "value",
        "features": [],
        "horizon": 7,
        "seasonal_period": 7,
        "source": {"layout": "long", "format": "csv", "uri": "levels.csv"},
        "quality": {"value_ranges": {"value": [-1e6, 1e6]}, "max_gap": "P2D", "min_rows": 100, "max_age": "P2D"},
        "feature_engineering": {"rolling_windows": [7, 28], "calendar": ["day_of_week"], "ttl": "P3D"},
        "promotion": {"holdout": "P56D", "drift_window": "P28D", "min_drift_rows": 20},
        "training": {"window": "P730D", "backtest": {"folds": 2, "test_size": 28, "gap": 7}},
    }
    path = directory / "levels.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def monthly_frame(series: int = 12, months: int = 144, seed: int = 5, end: date = SYNTHETIC_END) -> pd.DataFrame:
    """Monthly sales on the first of each month: a yearly season, a trend and noise, each series on a
    scale of its own (tens to tens of thousands). Months differ in length, so no fixed step fits them."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(end=pd.Timestamp(end), periods=months, freq="MS")
    t = np.arange(months)
    rows = []
    for s in range(series):
        scale = 10.0 ** rng.uniform(1, 4.5)
        season = np.sin(2 * np.pi * (t + rng.integers(12)) / 12)
        level = 1.0 + rng.uniform(-0.002, 0.006) * t + 0.25 * season + rng.normal(0, 0.04, months)
        rows.append(pd.DataFrame({"store": f"store_{s}", "month": stamps.strftime("%Y-%m-%d"), "units": scale * level}))
    return pd.concat(rows, ignore_index=True)


def monthly_config(source_uri: str) -> dict[str, object]:
    """A monthly dataset's config as a user writes it from the docs: frequency P1M, a yearly season."""
    return {
        "name": "sales",
        "entity_column": "store",
        "timestamp_column": "month",
        "frequency": "P1M",
        "target": "units",
        "features": [],
        "horizon": 6,
        "seasonal_period": 12,
        "source": {"layout": "long", "format": "csv", "uri": source_uri},
        # A month holds 28 to 31 days: one month between rows, and the newest row at most two old.
        "quality": {"value_ranges": {"units": [0, 1e6]}, "max_gap": "P31D", "min_rows": 100, "max_age": "P62D"},
        "feature_engineering": {"rolling_windows": [3, 12], "calendar": ["month", "quarter"], "ttl": "P93D"},
        "promotion": {"holdout": "P184D", "drift_window": "P365D", "min_drift_rows": 12},
        "daily": {"history_end": SYNTHETIC_END.isoformat()},
        "training": {
            "backtest": {"folds": 2, "test_size": 12, "gap": 6},
            "selection": {"candidates": ["naive", "seasonal_naive", "auto_ets"], "min_errors": 12},
        },
    }


def write_monthly_dataset(directory: Path, frame: pd.DataFrame | None = None) -> Path:
    """:func:`monthly_frame` as a long CSV with :func:`monthly_config`; returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else monthly_frame()).to_csv(directory / "sales.csv", index=False)
    path = directory / "sales.yaml"
    path.write_text(yaml.safe_dump(monthly_config("sales.csv")))
    return path
