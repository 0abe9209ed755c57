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


def synthetic_config(source_uri: str) -> dict[str, object]:
    """A long-layout dataset config, small enough to train in seconds."""
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
            "drift_method": "wasserstein",
            "drift_threshold": 0.5,
            "drift_consecutive_checks": 2,
        },
        "training": {
            "window": "P30D",
            "backtest": {"folds": 2, "test_size": 24, "gap": 6},
            "params": {"xgboost": {"n_estimators": 15, "max_depth": 3, "learning_rate": 0.3}},
        },
    }


def with_regime_change(frame: pd.DataFrame, days: int = 7, load_shift: float = 6.0) -> pd.DataFrame:
    """The last ``days`` of :func:`synthetic_frame` after a step in load, which the target follows."""
    out = frame.copy()
    stamps = pd.to_datetime(out["ts"])
    recent = stamps > stamps.max() - pd.Timedelta(days=days)
    out.loc[recent, "load"] += load_shift
    out.loc[recent, "temp"] += 0.8 * load_shift
    return out


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


def write_dataset(directory: Path, frame: pd.DataFrame | None = None, source_uri: str | None = None) -> Path:
    """Write the CSV and its config into ``directory``; returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else synthetic_frame()).to_csv(directory / "series.csv", index=False)
    config_path = directory / "synthetic.yaml"
    config_path.write_text(yaml.safe_dump(synthetic_config(source_uri or "series.csv")))
    return config_path
