"""The feature step of a day: the validated partition -> the feature table (Feast's offline source)
and the history table, built a part of series at a time on the engine (:mod:`core.engine`).

Kept apart from :mod:`feature_store.features` (how a feature is computed, which the service's side
reads too): this step may hand its parts to a Ray cluster, and the service imports no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.engine import engine
from core.objects import parquet_parts, read_parquet, write_object, write_parquet
from core.partitions import SERIES_PER_PART, validated_parts
from core.settings import Settings
from feature_store.features import (
    build_features,
    build_history,
    built_from_location,
    feature_table_location,
    history_table_location,
    offline_source,
)
from feature_store.outcomes import OfflineFeatures


@dataclass(frozen=True)
class PartToBuild:
    """A part of series' validated rows and their dataset: what a feature build of a part needs."""

    validated: pd.DataFrame
    dataset: DatasetConfig


def _tables(part: PartToBuild) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature rows and the history rows of a part of series: the unit of work an engine maps
    (a Ray task's whole input and output)."""
    return build_features(part.validated, part.dataset), build_history(part.validated, part.dataset)


def write_offline_source(
    settings: Settings, dataset: DatasetConfig, logical_date: date, per_part: int = SERIES_PER_PART
) -> OfflineFeatures:
    """Build features from the validated partition and replace the feature table (Feast's offline
    source) with them, and the history table with each series' newest histories; a note next to the
    feature table says which day they were built from.

    Both tables are built and written ``per_part`` series at a time
    (:func:`core.partitions.validated_parts`; a row group each), so memory holds one part's rows; on
    the engine of ``MLOPS_ENGINE`` (:mod:`core.engine`): in this process, or parts built by a Ray
    cluster's workers while this process reads the next and writes those done, in order.
    When the source already holds a later day (a backfill, or a re-run of a corrected day), only the
    day's own rows are replaced and the note keeps naming the later day: features never go back in
    time, and the day's rows are the ones its partition yields, once each; the history table, which
    holds only the newest day, stays as it is.
    """
    location = feature_table_location(settings, dataset)
    holds = offline_source(settings, dataset)
    parts = validated_parts(settings, dataset, logical_date, per_part)
    if holds is not None and holds.logical_date > logical_date:
        built = pd.concat([build_features(validated, dataset) for validated in parts], ignore_index=True)
        table = _with_day_replaced(read_parquet(location, settings), built, dataset, logical_date)
        write_parquet(table, location, settings)
        return OfflineFeatures(logical_date=logical_date, path=location, rows=len(table))
    # Exits in reverse: the history first, then the features; the note written last says both
    # tables hold the day.
    runs = engine(settings.engine, settings.ray_address)
    with (
        parquet_parts(location, settings) as features,
        parquet_parts(history_table_location(settings, dataset), settings) as histories,
    ):
        for built, history in runs.imap(_tables, (PartToBuild(validated, dataset) for validated in parts)):
            features.write(built)
            histories.write(history)
    built_from = OfflineFeatures(logical_date=logical_date, path=location, rows=features.rows)
    write_object(built_from_location(location), built_from.model_dump_json().encode(), settings)
    return built_from


def _with_day_replaced(held: pd.DataFrame, built: pd.DataFrame, dataset: DatasetConfig, day: date) -> pd.DataFrame:
    """``held`` with the rows stamped within ``day`` taken from ``built`` instead."""
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)

    def within(frame: pd.DataFrame) -> pd.Series:
        return (frame[EVENT_TIMESTAMP] >= start) & (frame[EVENT_TIMESTAMP] < end)

    merged = pd.concat([held[~within(held)], built[within(built)]], ignore_index=True)
    return merged.sort_values([dataset.entity_column, EVENT_TIMESTAMP], kind="stable").reset_index(drop=True)
