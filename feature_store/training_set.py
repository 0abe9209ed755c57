"""Training sets: labels from validated data, features from Feast's point-in-time join."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from configs.dataset import DatasetConfig
from configs.settings import Settings
from feature_store.features import EVENT_TIMESTAMP, feature_names, on_grid
from feature_store.repo import feature_service_name, get_store


def label_names(dataset: DatasetConfig) -> list[str]:
    return [f"y_{step}" for step in range(1, dataset.horizon + 1)]


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
    from data_pipeline.validation import read_validated

    labels = training_window(build_labels(read_validated(settings, dataset, logical_date), dataset), dataset)
    store = get_store(settings)
    joined = store.get_historical_features(
        entity_df=labels, features=store.get_feature_service(feature_service_name(dataset))
    ).to_df()
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
    columns = [dataset.entity_column, EVENT_TIMESTAMP, *feature_names(dataset), *label_names(dataset)]
    return joined[columns].sort_values([EVENT_TIMESTAMP, dataset.entity_column]).reset_index(drop=True)


def write_training_set(settings: Settings, dataset: DatasetConfig, logical_date: date, path: Path) -> Path:
    """Persist the training set, so that tuning and training (maybe in a pod) read the same rows."""
    from data_pipeline.landing import write_atomically

    write_atomically(get_training_set(settings, dataset, logical_date), path)
    return path
