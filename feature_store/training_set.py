"""Training sets: labels from validated data, features from Feast's point-in-time join."""

from __future__ import annotations

from datetime import date

import pandas as pd

from core.columns import EVENT_TIMESTAMP, feature_names, label_names
from core.dataset import DatasetConfig
from core.history import with_history
from core.partitions import read_validated
from core.settings import Settings
from feature_store.features import local_offline_source, on_grid
from feature_store.outcomes import TrainingSet
from feature_store.repo import feature_service_name, get_store


def build_labels(validated: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """One row per (entity, t) whose H future targets all exist: ``y_h`` = target at t + h periods."""
    parts = []
    for entity, frame in validated.groupby(dataset.entity_column, sort=True):
        observed = frame.set_index(dataset.timestamp_column).sort_index()
        target = on_grid(observed, dataset)[dataset.target]
        labels = pd.DataFrame(
            {f"y_{step}": target.shift(-step) for step in range(1, dataset.horizon + 1)},
            index=target.index,
        ).loc[observed.index]
        labels.insert(0, dataset.entity_column, entity)
        parts.append(labels)
    table = pd.concat(parts).rename_axis(EVENT_TIMESTAMP).reset_index()
    table[EVENT_TIMESTAMP] = pd.to_datetime(table[EVENT_TIMESTAMP], utc=True)
    return table.dropna(subset=label_names(dataset)).reset_index(drop=True)


def training_window(labels: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    window = dataset.training.window
    if window is None:
        return labels
    start = labels[EVENT_TIMESTAMP].max() - window
    return labels[labels[EVENT_TIMESTAMP] > start].reset_index(drop=True)


def get_training_set(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    """Entity rows with labels, joined point-in-time with the FeatureService's features.

    Rows are sorted by (timestamp, entity); features missing at a row's time stay NaN for the
    preprocessor to handle.
    """
    labels = training_window(build_labels(read_validated(settings, dataset, logical_date), dataset), dataset)
    local_offline_source(settings, dataset)
    store = get_store(settings)
    joined = store.get_historical_features(
        entity_df=labels, features=store.get_feature_service(feature_service_name(dataset))
    ).to_df()
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
    columns = [dataset.entity_column, EVENT_TIMESTAMP, *feature_names(dataset), *label_names(dataset)]
    return joined[columns].sort_values([EVENT_TIMESTAMP, dataset.entity_column]).reset_index(drop=True)


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
    stamps = frame[EVENT_TIMESTAMP]
    step = dataset.frequency
    holdout_start = step.shift(stamps.max() - dataset.promotion.holdout, 1)
    if start is not None:
        asked = pd.Timestamp(start).tz_localize("UTC")
        at_least_a_day = step.shift(stamps.max() - pd.Timedelta(days=1), 1)
        holdout_start = min(max(asked, holdout_start), at_least_a_day)
    last_training = step.shift(holdout_start, -dataset.horizon)
    training = frame[stamps <= last_training].reset_index(drop=True)
    holdout = frame[stamps >= holdout_start].reset_index(drop=True)
    if training.empty or holdout.empty:
        raise ValueError(
            f"{dataset.name}: {len(frame)} labelled rows leave {len(training)} for training and {len(holdout)} "
            f"for the {dataset.promotion.holdout} holdout; more history or a shorter holdout is needed"
        )
    # Each holdout row's history (its series' values up to the row's time, training rows included):
    # what a per-series model forecasts it from.
    return training, with_history(holdout, frame, dataset)


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
    settings: Settings, dataset: DatasetConfig, logical_date: date, location: str, holdout_start: date | None = None
) -> TrainingSet:
    """Persist training rows and holdout (next to them), so that tuning, training (maybe in a pod) and
    the promotion gate read the same rows; ``location``: a local path or an ``s3://`` object (the
    holdout first: the training set's presence means all are there); ``holdout_start``: see
    :func:`split_holdout`. With ``training.refit``, every labelled row too (training rows, the ones
    between them and the holdout, the holdout): what the served model is refitted on."""
    from core.objects import write_parquet

    labelled = get_training_set(settings, dataset, logical_date)
    training, holdout = split_holdout(labelled, dataset, holdout_start)
    held_out = write_parquet(holdout, holdout_location(location), settings)
    every_row = write_parquet(labelled, labelled_location(location), settings) if dataset.training.refit else None
    write_parquet(training, location, settings)
    return TrainingSet(
        location=location,
        holdout_location=held_out,
        rows=len(training),
        holdout_rows=len(holdout),
        labelled_location=every_row,
        labelled_rows=len(labelled),
    )
