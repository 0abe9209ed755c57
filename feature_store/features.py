"""Feature engineering: validated raw rows -> one feature row per (entity, timestamp).

A feature row stamped ``t`` is what is known at ``t``: lags, rolling windows and calendar values are
computed from rows at or before ``t`` only. Lags are taken on a regular time grid (not by row
position), so a gap in the data yields missing values instead of silently shifted ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from core.columns import EVENT_TIMESTAMP, feature_names, lag_name, numeric_feature_names, rolling_names
from core.dataset import DatasetConfig
from core.files import write_atomically_bytes
from core.history import LaidEnd, history_frame
from core.objects import (
    ParquetRows,
    exists,
    join,
    read_object,
    read_parquet,
)
from core.settings import Settings
from feature_store.outcomes import OfflineFeatures

_CALENDAR = {
    "hour": lambda ts: ts.dt.hour,
    "day_of_week": lambda ts: ts.dt.dayofweek,
    "day_of_month": lambda ts: ts.dt.day,
    "week_of_year": lambda ts: ts.dt.isocalendar().week,
    "month": lambda ts: ts.dt.month,
    "quarter": lambda ts: ts.dt.quarter,
}


class _WithinSeries(BaseIndexer):
    """A trailing window of ``window_size`` grid points that never reaches before its series' first
    point (``first``: each point's): the windows a rolling statistic of one series alone would have,
    for all the series laid end to end."""

    first: np.ndarray

    def get_window_bounds(
        self, num_values: int = 0, min_periods: int | None = None, center: bool | None = None,
        closed: str | None = None, step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        end = np.arange(1, num_values + 1, dtype=np.int64)
        return np.maximum(end - self.window_size, self.first), end


def build_features(validated: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Feature table with columns: entity, ``event_timestamp``, then :func:`feature_names`; a row per
    observed (entity, time), in the order of the entities, then of the times.

    Every series' grid is laid end to end in one array (:class:`core.history.LaidEnd`): a lag is the
    value ``lag`` points back on the same series' grid, a rolling statistic one over the window of
    grid points that ends at the row (never before its series' first point), so a gap in the data
    gives missing values, not shifted ones. One pass over the part, whatever its number of series.
    """
    key, time = dataset.entity_column, dataset.timestamp_column
    laid = LaidEnd.of(validated.sort_values(time, kind="stable"), key, time, dataset.frequency)
    if len(laid.cell) and (np.diff(laid.cell) <= 0).any():  # within an entity, times increase
        raise ValueError(f"{dataset.name}: an entity has two rows at one time")
    # Nanoseconds, as a grid of times made by pandas is, whatever unit the part's times came in.
    out: dict[str, Any] = {key: laid.rows[key].to_numpy(), EVENT_TIMESTAMP: laid.stamps.as_unit("ns")}
    target = laid.grid(dataset.target)
    for lag in dataset.target_lags:
        out[lag_name(dataset.target, lag)] = laid.lagged(target, lag)
    for column in dataset.features:
        values = laid.grid(column)
        for lag in dataset.feature_engineering.covariate_lags:
            out[lag_name(column, lag)] = laid.lagged(values, lag)
    for window in dataset.feature_engineering.rolling_windows:
        rolling = pd.Series(target).rolling(_WithinSeries(window_size=window, first=laid.first), min_periods=window)
        mean, std = rolling_names(dataset.target, window)
        out[mean], out[std] = rolling.mean().to_numpy()[laid.cell], rolling.std().to_numpy()[laid.cell]
    calendar = pd.DatetimeIndex(laid.rows[time]).to_series(index=laid.rows.index)
    for name in dataset.feature_engineering.calendar:
        out[name] = _CALENDAR[name](calendar).astype("int64").to_numpy()
    table = pd.DataFrame(out)
    numeric = numeric_feature_names(dataset)
    table[numeric] = table[numeric].astype("float64")
    return table[[key, EVENT_TIMESTAMP, *feature_names(dataset)]]


def offline_source_path(settings: Settings, dataset: DatasetConfig) -> Path:
    """Feast's offline source: a local file in every process that reads it through Feast (its DuckDB
    offline store reads local files), a copy of the feature table where that lies in the lake."""
    return settings.feast_repo / "data" / f"{dataset.name}_features.parquet"


def history_source_path(settings: Settings, dataset: DatasetConfig) -> Path:
    """Feast's offline source of each series' history (:mod:`core.history`), beside the features'."""
    return settings.feast_repo / "data" / f"{dataset.name}_history.parquet"


def history_table_location(settings: Settings, dataset: DatasetConfig) -> str:
    """The history table as the tasks share it: the local source, or an object in the lake."""
    if settings.lake_uri:
        return join(settings.lake_uri, "features", f"{dataset.name}_history.parquet")
    return str(history_source_path(settings, dataset))


def build_history(validated: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Each entity's history at each of its times within a day of its newest one: what the online
    store serves (a day, so that a load at any hour of it finds its row)."""
    return history_frame(validated, dataset, dataset.timestamp_column, newest=pd.Timedelta(days=1))


def feature_table_location(settings: Settings, dataset: DatasetConfig) -> str:
    """The dataset's feature table, which every later task reads: Feast's offline source itself, or
    an object under ``MLOPS_LAKE_URI`` where tasks run in pods that share no filesystem."""
    if settings.lake_uri:
        return join(settings.lake_uri, "features", f"{dataset.name}_features.parquet")
    return str(offline_source_path(settings, dataset))


def read_feature_table(settings: Settings, dataset: DatasetConfig) -> pd.DataFrame:
    return read_parquet(feature_table_location(settings, dataset), settings)


def features_since(settings: Settings, dataset: DatasetConfig, start: pd.Timestamp) -> pd.DataFrame:
    """The feature table's rows stamped at or after ``start``, read a row group at a time: a window of
    every series' newest rows without the whole table in memory."""
    return ParquetRows(feature_table_location(settings, dataset), settings).since(EVENT_TIMESTAMP, start)


def local_offline_source(settings: Settings, dataset: DatasetConfig) -> Path:
    """Feast's offline source as this process must find it before Feast reads it: where the feature
    table lies in the lake, its current copy is fetched first (each pod starts without one)."""
    path = offline_source_path(settings, dataset)
    location = feature_table_location(settings, dataset)
    if location != str(path):
        write_atomically_bytes(read_object(location, settings), path)
        history = history_table_location(settings, dataset)
        if exists(history, settings):
            write_atomically_bytes(read_object(history, settings), history_source_path(settings, dataset))
    return path


def offline_source(settings: Settings, dataset: DatasetConfig) -> OfflineFeatures | None:
    """What the feature table holds now (the day it was built from), or None when nothing was built."""
    location = feature_table_location(settings, dataset)
    note = built_from_location(location)
    if not (exists(location, settings) and exists(note, settings)):
        return None
    return OfflineFeatures.model_validate_json(read_object(note, settings))


def built_from_location(location: str) -> str:
    """The note next to the feature table at ``location`` that names the day it was built from."""
    return f"{location.removesuffix('.parquet')}.built_from.json"
