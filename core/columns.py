"""The column names a dataset config implies: features, labels and the event timestamp.

Feature engineering writes these columns, Feast serves them, training fits on them and a model
bundle records them as its input signature: one definition, so none of those can disagree.
"""

from __future__ import annotations

from core.dataset import DatasetConfig

EVENT_TIMESTAMP = "event_timestamp"


def lag_name(column: str, lag: int) -> str:
    return f"{column}_lag_{lag}"


def rolling_names(column: str, window: int) -> tuple[str, str]:
    """(mean, standard deviation) of ``column`` over the last ``window`` rows."""
    return f"{column}_mean_{window}", f"{column}_std_{window}"


def numeric_feature_names(dataset: DatasetConfig) -> list[str]:
    names = [lag_name(dataset.target, lag) for lag in dataset.target_lags]
    for column in dataset.features:
        names += [lag_name(column, lag) for lag in dataset.feature_engineering.covariate_lags]
    for window in dataset.feature_engineering.rolling_windows:
        names += list(rolling_names(dataset.target, window))
    return names


def target_level_names(dataset: DatasetConfig) -> list[str]:
    """The features that are levels of the target itself: its lags and rolling means (not the
    standard deviations, which are spreads)."""
    lags = [lag_name(dataset.target, lag) for lag in dataset.target_lags]
    return lags + [rolling_names(dataset.target, w)[0] for w in dataset.feature_engineering.rolling_windows]


def movement_names(dataset: DatasetConfig) -> list[str]:
    """The target's newest consecutive lags (``lag_0``, ``lag_1``, ...), whose one-step changes measure
    how much a row's series is moving now (adaptive interval widths); none where the intervals are not
    adaptive or fewer than two such lags exist."""
    present, count = set(dataset.target_lags), 0
    while count in present:
        count += 1
    if not dataset.intervals.adaptive or count < 2:
        return []
    return [lag_name(dataset.target, lag) for lag in range(count)]


def calendar_feature_names(dataset: DatasetConfig) -> list[str]:
    return list(dataset.feature_engineering.calendar)


def feature_names(dataset: DatasetConfig) -> list[str]:
    """All feature columns, in the order models see them."""
    return numeric_feature_names(dataset) + calendar_feature_names(dataset)


def history_name(dataset: DatasetConfig) -> str:
    """The feature holding each row's recent target values (:mod:`core.history`): a list, not a
    number, so it is none of :func:`feature_names` and the tabular families never see it."""
    return f"{dataset.target}_history"


def label_names(dataset: DatasetConfig) -> list[str]:
    """``y_1 .. y_H``: the target 1..H periods after a row's timestamp."""
    return [f"y_{step}" for step in range(1, dataset.horizon + 1)]
