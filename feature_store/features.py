"""Feature engineering: validated raw rows -> one feature row per (entity, timestamp).

A feature row stamped ``t`` is what is known at ``t``: lags, rolling windows and calendar values are
computed from rows at or before ``t`` only. Lags are taken on a regular time grid (not by row
position), so a gap in the data yields missing values instead of silently shifted ones.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from core.columns import EVENT_TIMESTAMP, feature_names, lag_name, numeric_feature_names, rolling_names
from core.dataset import DatasetConfig
from core.files import write_atomically, write_text_atomically
from core.partitions import read_validated
from core.settings import Settings
from feature_store.outcomes import OfflineFeatures

_CALENDAR = {
    "hour": lambda ts: ts.dt.hour,
    "day_of_week": lambda ts: ts.dt.dayofweek,
    "day_of_month": lambda ts: ts.dt.day,
    "month": lambda ts: ts.dt.month,
}


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
        mean, std = rolling_names(dataset.target, window)
        out[mean], out[std] = rolling.mean(), rolling.std()
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


def write_offline_source(settings: Settings, dataset: DatasetConfig, logical_date: date) -> OfflineFeatures:
    """Build features from the validated partition and replace Feast's offline source with them; a
    note next to it says which day they were built from.

    When the source already holds a later day (a backfill, or a re-run of a corrected day), only the
    day's own rows are replaced and the note keeps naming the later day: features never go back in
    time, and the day's rows are the ones its partition yields, once each.
    """
    table = build_features(read_validated(settings, dataset, logical_date), dataset)
    path = offline_source_path(settings, dataset)
    holds = offline_source(settings, dataset)
    if holds is not None and holds.logical_date > logical_date:
        table = _with_day_replaced(pd.read_parquet(path), table, dataset, logical_date)
        write_atomically(table, path)
        return OfflineFeatures(logical_date=logical_date, path=path, rows=len(table))
    built = OfflineFeatures(logical_date=logical_date, path=path, rows=len(table))
    write_atomically(table, path)
    write_text_atomically(built.model_dump_json(), _built_from(path))
    return built


def _with_day_replaced(held: pd.DataFrame, built: pd.DataFrame, dataset: DatasetConfig, day: date) -> pd.DataFrame:
    """``held`` with the rows stamped within ``day`` taken from ``built`` instead."""
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)

    def within(frame: pd.DataFrame) -> pd.Series:
        return (frame[EVENT_TIMESTAMP] >= start) & (frame[EVENT_TIMESTAMP] < end)

    merged = pd.concat([held[~within(held)], built[within(built)]], ignore_index=True)
    return merged.sort_values([dataset.entity_column, EVENT_TIMESTAMP], kind="stable").reset_index(drop=True)


def offline_source(settings: Settings, dataset: DatasetConfig) -> OfflineFeatures | None:
    """What the offline source holds now (the day it was built from), or None when nothing was built."""
    path = offline_source_path(settings, dataset)
    note = _built_from(path)
    if not (path.is_file() and note.is_file()):
        return None
    return OfflineFeatures.model_validate_json(note.read_text())


def _built_from(path: Path) -> Path:
    return path.with_name(f"{path.stem}.built_from.json")
