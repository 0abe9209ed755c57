"""Training sets: labels from validated data, features from Feast's point-in-time join."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP, feature_names, label_names
from core.dataset import DatasetConfig
from core.history import LaidEnd, with_history
from core.objects import parquet_parts
from core.partitions import SERIES_PER_PART, validated_parts
from core.settings import Settings
from feature_store.features import local_offline_source
from feature_store.outcomes import TrainingSet
from feature_store.repo import feature_service_name, get_store


def build_labels(validated: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """One row per observed (entity, t) whose H future targets all exist: ``y_h`` = target at t + h
    periods on the frequency grid (a gap or a missing value there leaves the row out). In the order
    of the entities, then of the times.

    Every series' grid is laid end to end (:class:`core.history.LaidEnd`), as the features' are: a
    label is the value ``h`` points ahead on the row's own series, in one pass over the part
    whatever its number of series.
    """
    key, time = dataset.entity_column, dataset.timestamp_column
    laid = LaidEnd.of(validated.sort_values(time, kind="stable"), key, time, dataset.frequency)
    if len(laid.cell) and (np.diff(laid.cell) <= 0).any():  # within an entity, times increase
        raise ValueError(f"{dataset.name}: an entity has two rows at one time")
    target = laid.grid(dataset.target)
    bounds = np.flatnonzero(np.r_[True, laid.codes[1:] != laid.codes[:-1]]) if len(laid.codes) else laid.codes
    last = np.maximum.reduceat(laid.cell, bounds)[laid.codes] if len(laid.codes) else laid.cell
    out: dict[str, Any] = {key: laid.rows[key].to_numpy(), EVENT_TIMESTAMP: laid.stamps.as_unit("ns")}
    for step in range(1, dataset.horizon + 1):
        ahead = laid.cell + step
        out[f"y_{step}"] = np.where(ahead <= last, target[np.minimum(ahead, max(laid.size - 1, 0))], np.nan)
    table = pd.DataFrame(out)
    return table.dropna(subset=label_names(dataset)).reset_index(drop=True)


def newest_label_time(
    settings: Settings, dataset: DatasetConfig, logical_date: date, per_part: int
) -> pd.Timestamp | None:
    """The newest time of a labelled row (:func:`build_labels` of each part of validated series);
    None: no row has all its labels."""
    newest: pd.Timestamp | None = None
    columns = [dataset.entity_column, dataset.timestamp_column, dataset.target]
    for validated in validated_parts(settings, dataset, logical_date, per_part):
        labels = build_labels(validated[columns], dataset)
        if not labels.empty:
            last = labels[EVENT_TIMESTAMP].max()
            newest = last if newest is None else max(newest, last)
    return newest


def labelled_parts(
    settings: Settings, dataset: DatasetConfig, logical_date: date, per_part: int = SERIES_PER_PART
) -> Iterator[pd.DataFrame]:
    """The labelled rows of ``per_part`` series at a time (:func:`core.partitions.validated_parts`),
    joined point-in-time with the FeatureService's features; each part's rows sorted by (entity,
    timestamp), so that the parts make one table sorted so. Features missing at a row's time stay
    NaN for the preprocessor to handle."""
    local_offline_source(settings, dataset)
    store = get_store(settings)
    service = store.get_feature_service(feature_service_name(dataset))
    columns = [dataset.entity_column, EVENT_TIMESTAMP, *feature_names(dataset), *label_names(dataset)]
    for validated in validated_parts(settings, dataset, logical_date, per_part):
        labels = build_labels(validated, dataset)
        if labels.empty:
            continue
        keys = [dataset.entity_column, EVENT_TIMESTAMP]
        # Feast joins the keys alone: the labels, carried through its join, would only cost memory.
        joined = store.get_historical_features(entity_df=labels[keys], features=service).to_df()
        joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
        joined = joined.merge(labels, on=keys, how="inner", validate="one_to_one")
        yield joined[columns].sort_values(keys).reset_index(drop=True)


def window_start(last: pd.Timestamp, dataset: DatasetConfig) -> pd.Timestamp | None:
    """The time after which labelled rows are trained on (``training.window`` before the newest
    labelled row's time ``last``); None: every row."""
    window = dataset.training.window
    return None if window is None else last - window


def in_window(labels: pd.DataFrame, start: pd.Timestamp | None) -> pd.DataFrame:
    return labels if start is None else labels[labels[EVENT_TIMESTAMP] > start].reset_index(drop=True)


def training_window(labels: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    if labels.empty:
        return labels
    return in_window(labels, window_start(labels[EVENT_TIMESTAMP].max(), dataset))


def get_training_set(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    """Every labelled row in the training window, joined with its features (:func:`labelled_parts`),
    sorted by (entity, timestamp): the whole table, for what needs it in memory. A training set for
    training is written a part at a time instead (:func:`write_training_set`)."""
    parts = list(labelled_parts(settings, dataset, logical_date))
    if not parts:
        raise ValueError(f"{dataset.name}: no series has {dataset.horizon} future values to label a row with")
    return training_window(pd.concat(parts, ignore_index=True), dataset)


@dataclass(frozen=True)
class HoldoutBounds:
    """Where training rows end and the holdout begins (see :func:`split_holdout`)."""

    last_training: pd.Timestamp
    holdout_start: pd.Timestamp


def holdout_bounds(last: pd.Timestamp, dataset: DatasetConfig, start: date | None = None) -> HoldoutBounds:
    """The bounds of :func:`split_holdout` for labelled rows whose newest time is ``last``."""
    step = dataset.frequency
    holdout_start = step.shift(last - dataset.promotion.holdout, 1)
    if start is not None:
        asked = pd.Timestamp(start).tz_localize("UTC")
        at_least_a_day = step.shift(last - pd.Timedelta(days=1), 1)
        holdout_start = min(max(asked, holdout_start), at_least_a_day)
    return HoldoutBounds(step.shift(holdout_start, -dataset.horizon), holdout_start)


def _split(frame: pd.DataFrame, bounds: HoldoutBounds, dataset: DatasetConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    stamps = frame[EVENT_TIMESTAMP]
    training = frame[stamps <= bounds.last_training].reset_index(drop=True)
    holdout = frame[stamps >= bounds.holdout_start].reset_index(drop=True)
    # Each holdout row's history (its series' values up to the row's time, training rows included):
    # what a per-series model forecasts it from.
    return training, with_history(holdout, frame, dataset)


def _too_few(dataset: DatasetConfig, labelled: int, training: int, holdout: int) -> ValueError:
    return ValueError(
        f"{dataset.name}: {labelled} labelled rows leave {training} for training and {holdout} "
        f"for the {dataset.promotion.holdout} holdout; more history or a shorter holdout is needed"
    )


def split_holdout(
    frame: pd.DataFrame, dataset: DatasetConfig, start: date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows): the newest ``promotion.holdout`` is kept out of training.

    Champion and challenger are compared on the holdout, so the challenger must not have seen it:
    training rows end one horizon before the holdout starts, so that no training label is a target
    inside it. ``start`` (the first day of a drifted streak, from the drift monitor) begins the
    holdout there instead, so that the comparison is made on the data after a change and training
    keeps everything before it; it never makes the holdout longer than configured, nor shorter than
    a day. The holdout rows carry their history (:mod:`core.history`).
    """
    training, holdout = _split(frame, holdout_bounds(frame[EVENT_TIMESTAMP].max(), dataset, start), dataset)
    if training.empty or holdout.empty:
        raise _too_few(dataset, len(frame), len(training), len(holdout))
    return training, holdout


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a table (column names, dtypes and values, not the file's bytes): two runs
    that trained on the same rows carry the same fingerprint."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    # A list per row (a history) hashes as its values' bytes: pandas hashes no arrays.
    lists = [c for c in frame.columns if frame[c].dtype == object and isinstance(_first(frame[c]), np.ndarray | list)]
    if lists:
        frame = frame.assign(**{c: frame[c].map(lambda v: np.asarray(v, dtype=np.float64).tobytes()) for c in lists})
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _first(column: pd.Series) -> object:
    known = column.dropna()
    return known.iloc[0] if len(known) else None


def holdout_location(training_set: str) -> str:
    """Where the holdout of a written training set lies (next to it, ``.holdout`` before the suffix)."""
    stem = training_set.removesuffix(".parquet")
    return f"{stem}.holdout.parquet"


def labelled_location(training_set: str) -> str:
    """Where every labelled row of a written training set lies (``.labelled`` before the suffix)."""
    stem = training_set.removesuffix(".parquet")
    return f"{stem}.labelled.parquet"


def write_training_set(
    settings: Settings,
    dataset: DatasetConfig,
    logical_date: date,
    location: str,
    holdout_start: date | None = None,
    per_part: int = SERIES_PER_PART,
) -> TrainingSet:
    """Persist training rows and holdout (next to them), so that tuning, training (maybe in a pod) and
    the promotion gate read the same rows; ``location``: a local path or an ``s3://`` object (the
    holdout first: the training set's presence means all are there); ``holdout_start``: see
    :func:`split_holdout`. With ``training.refit``, every labelled row too (training rows, the ones
    between them and the holdout, the holdout): what the served model is refitted on.

    Written a part of series at a time, in two passes: the labels alone, for the newest labelled
    row's time (:func:`newest_label_time`), which places the window and the holdout; then each part
    labelled and joined with its features (:func:`labelled_parts`), windowed and split at those
    bounds, into the outputs. Memory holds one part of ``per_part`` series, and the disk the outputs
    alone.
    """
    last = newest_label_time(settings, dataset, logical_date, per_part)
    if last is None:
        raise ValueError(f"{dataset.name}: no series has {dataset.horizon} future values to label a row with")
    start, bounds = window_start(last, dataset), holdout_bounds(last, dataset, holdout_start)
    labelled_at = labelled_location(location) if dataset.training.refit else None
    # Exits in reverse: every row, then the holdout, then the training set itself.
    with (
        parquet_parts(location, settings) as training,
        parquet_parts(holdout_location(location), settings) as holdout,
        parquet_parts(labelled_at, settings) if labelled_at else contextlib.nullcontext() as every_row,
    ):
        labelled = 0
        for joined in labelled_parts(settings, dataset, logical_date, per_part):
            part = in_window(joined, start)
            labelled += len(part)
            trained, held = _split(part, bounds, dataset)
            training.write(trained)
            holdout.write(held)
            if every_row is not None:
                every_row.write(part)
        if not training.rows or not holdout.rows:
            raise _too_few(dataset, labelled, training.rows, holdout.rows)
    return TrainingSet(
        location=location,
        holdout_location=holdout_location(location),
        rows=training.rows,
        holdout_rows=holdout.rows,
        labelled_location=labelled_at,
        labelled_rows=labelled,
    )
