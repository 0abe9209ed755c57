"""Feature engineering: validated raw rows -> one feature row per (entity, timestamp).

A feature row stamped ``t`` is what is known at ``t``: lags, rolling windows and calendar values are
computed from rows at or before ``t`` only. Lags are taken on a regular time grid (not by row
position), so a gap in the data yields missing values instead of silently shifted ones.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from configs.dataset import DatasetConfig
from configs.settings import Settings
from data_pipeline.landing import write_atomically

EVENT_TIMESTAMP = "event_timestamp"

_CALENDAR = {
    "hour": lambda ts: ts.dt.hour,
    "day_of_week": lambda ts: ts.dt.dayofweek,
    "day_of_month": lambda ts: ts.dt.day,
    "month": lambda ts: ts.dt.month,
}


def lag_name(column: str, lag: int) -> str:
    return f"{column}_lag_{lag}"


def numeric_feature_names(dataset: DatasetConfig) -> list[str]:
    names = [lag_name(dataset.target, lag) for lag in dataset.target_lags]
    for column in dataset.features:
        names += [lag_name(column, lag) for lag in dataset.feature_engineering.covariate_lags]
    for window in dataset.feature_engineering.rolling_windows:
        names += [f"{dataset.target}_mean_{window}", f"{dataset.target}_std_{window}"]
    return names


def calendar_feature_names(dataset: DatasetConfig) -> list[str]:
    return list(dataset.feature_engineering.calendar)


def feature_names(dataset: DatasetConfig) -> list[str]:
    """All feature columns, in the order models see them."""
    return numeric_feature_names(dataset) + calendar_feature_names(dataset)


def on_grid(series_frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Reindex one entity's rows (indexed by timestamp) onto the regular frequency grid."""
    grid = pd.date_range(series_frame.index.min(), series_frame.index.max(), freq=dataset.frequency)
    return series_frame.reindex(grid)


def _entity_features(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    observed = frame.set_index(dataset.timestamp_column).sort_index()
    grid = on_grid(observed, dataset)
    out = pd.DataFrame(index=grid.index)
    target = grid[dataset.target]
    for lag in dataset.target_lags:
        out[lag_name(dataset.target, lag)] = target.shift(lag)
    for column in dataset.features:
        for lag in dataset.feature_engineering.covariate_lags:
            out[lag_name(column, lag)] = grid[column].shift(lag)
    for window in dataset.feature_engineering.rolling_windows:
        rolling = target.rolling(window, min_periods=window)
        out[f"{dataset.target}_mean_{window}"] = rolling.mean()
        out[f"{dataset.target}_std_{window}"] = rolling.std()
    stamps = out.index.to_series()
    for name in dataset.feature_engineering.calendar:
        out[name] = _CALENDAR[name](stamps).astype("int64")
    # Keep only timestamps that were observed: the grid rows exist only to make lags exact.
    return out.loc[observed.index]


def build_features(validated: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Feature table with columns: entity, ``event_timestamp``, then :func:`feature_names`."""
    parts = []
    for entity, frame in validated.groupby(dataset.entity_column, sort=True):
        features = _entity_features(frame, dataset)
        features.insert(0, dataset.entity_column, entity)
        parts.append(features)
    table = pd.concat(parts).rename_axis(EVENT_TIMESTAMP).reset_index()
    table[EVENT_TIMESTAMP] = pd.to_datetime(table[EVENT_TIMESTAMP], utc=True)
    numeric = numeric_feature_names(dataset)
    table[numeric] = table[numeric].astype("float64")
    return table[[dataset.entity_column, EVENT_TIMESTAMP, *feature_names(dataset)]]


def offline_source_path(settings: Settings, dataset: DatasetConfig) -> Path:
    return settings.feast_repo / "data" / f"{dataset.name}_features.parquet"


def write_offline_source(settings: Settings, dataset: DatasetConfig, logical_date: date) -> Path:
    """Build features from the validated partition and replace Feast's offline source with them."""
    from data_pipeline.validation import read_validated

    table = build_features(read_validated(settings, dataset, logical_date), dataset)
    path = offline_source_path(settings, dataset)
    write_atomically(table, path)
    return path
