"""Each series' recent target values: what a per-series (statistical) family forecasts from.

A tabular family forecasts from one feature row; a statistical model (ETS, ARIMA, Theta) carries a
state that the series' values move, so it forecasts from the values themselves. The history of a
row stamped ``t`` is the target's last ``dataset.history_length`` values on the frequency grid, the
newest at ``t``, oldest first, NaN where the grid has no value (a gap, or before the series began).

The values come from feature rows: lag 0 is the target at the row's time and the labels ``y_h`` are
the target ``h`` steps later. A window never reaches past its row's own time, so labels (known only
later) never leak into a forecast made at ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP, label_names, lag_name
from core.dataset import DatasetConfig
from core.frequency import Frequency


@dataclass(frozen=True)
class GridSeries:
    """One entity's target on the frequency grid: ``values[i]`` is ``i`` steps after ``start`` (NaN: unknown)."""

    start: pd.Timestamp
    frequency: Frequency
    values: np.ndarray

    @property
    def end(self) -> pd.Timestamp:
        return self.frequency.shift(self.start, len(self.values) - 1)

    def positions(self, stamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        """The grid index of each timestamp (a timestamp off the grid raises)."""
        return positions(self.frequency, self.start, stamps)

    def until(self, stamp: pd.Timestamp) -> np.ndarray:
        """The values up to and including ``stamp``."""
        return self.values[: int(self.positions(pd.DatetimeIndex([stamp]))[0]) + 1]

    def windows(self, stamps: pd.Series | pd.DatetimeIndex, length: int) -> np.ndarray:
        """(rows, length): the ``length`` values ending at each timestamp, NaN before the series began."""
        padded = np.concatenate([np.full(length - 1, np.nan), self.values])
        ends = self.positions(stamps) + length - 1  # in ``padded``
        if len(ends) and (ends.min() < length - 1 or ends.max() >= len(padded)):
            raise ValueError("a row's time lies outside its series")
        views = np.lib.stride_tricks.sliding_window_view(padded, length)
        return np.array(views[ends - (length - 1)], dtype=np.float64)


def positions(frequency: Frequency, start: pd.Timestamp, stamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Each timestamp's steps after ``start`` on the grid (a timestamp off the grid raises)."""
    if frequency.is_fixed:  # the common case, without the grid's numbering
        offsets = (pd.DatetimeIndex(stamps) - start) / frequency.fixed
        index = np.asarray(np.round(offsets), dtype=np.int64)
        if not np.allclose(offsets, index):
            raise ValueError(f"timestamps off the {frequency} grid that starts at {start}")
        return index
    return frequency.ordinals(stamps) - frequency.ordinal(start)


def history_frame(
    rows: pd.DataFrame, dataset: DatasetConfig, time_column: str, newest: pd.Timedelta | None = None
) -> pd.DataFrame:
    """From observed rows (entity, ``time_column``, target): each entity's history at each of its
    times (only those within ``newest`` of its newest one, where given), as a table of entity,
    ``event_timestamp`` and the history column (a list per row): the offline source of the online
    store's history."""
    from core.columns import history_name

    frequency = dataset.frequency
    length = dataset.history_length
    parts = []
    for entity, own in rows.groupby(dataset.entity_column, sort=True):
        stamps = pd.DatetimeIndex(pd.to_datetime(own[time_column], utc=True))
        start, end = stamps.min(), stamps.max()
        values = np.full(frequency.steps_between(start, end) + 1, np.nan)
        grid = GridSeries(start=start, frequency=frequency, values=values)
        values[grid.positions(stamps)] = own[dataset.target].to_numpy(dtype=np.float64)
        wanted = stamps if newest is None else stamps[stamps > end - newest]
        windows = grid.windows(wanted, length)
        parts.append(
            pd.DataFrame(
                {
                    dataset.entity_column: str(entity),
                    EVENT_TIMESTAMP: wanted,
                    history_name(dataset): list(windows),
                }
            )
        )
    columns = [dataset.entity_column, EVENT_TIMESTAMP, history_name(dataset)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def target_series(frame: pd.DataFrame, dataset: DatasetConfig, with_labels: bool = True) -> dict[str, GridSeries]:
    """Each entity's target as the frame's rows hold it: lag 0 at each row's time and, ``with_labels``,
    each label at its own time (so a training set's series runs to the newest row's last label)."""
    frequency = dataset.frequency
    lag0 = lag_name(dataset.target, 0)
    labels = label_names(dataset) if with_labels else []
    known = [c for c in labels if c in frame.columns]
    if lag0 not in frame.columns and not known:
        raise ValueError(f"rows of {dataset.name} carry neither {lag0} nor labels: no target values to forecast from")
    out: dict[str, GridSeries] = {}
    for entity, rows in frame.groupby(dataset.entity_column, sort=True):
        stamps = pd.DatetimeIndex(rows[EVENT_TIMESTAMP])
        start, newest = stamps.min(), stamps.max()
        if lag0 not in rows.columns:
            start = frequency.shift(start, 1)  # the first value known is the first row's y_1
        end = frequency.shift(newest, len(known))
        values = np.full(frequency.steps_between(start, end) + 1, np.nan)
        base = positions(frequency, start, stamps)
        # Labels first, lag 0 last: where both give a value for the same time, the observed one wins.
        for offset, column in enumerate(known, start=1):
            column_values = rows[column].to_numpy(dtype=np.float64)
            given = ~np.isnan(column_values)
            values[base[given] + offset] = column_values[given]
        if lag0 in rows.columns:
            observed = rows[lag0].to_numpy(dtype=np.float64)
            given = ~np.isnan(observed) & (base >= 0)
            values[base[given]] = observed[given]
        out[str(entity)] = GridSeries(start=start, frequency=frequency, values=values)
    return out


def with_history(rows: pd.DataFrame, source: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """``rows`` with the history column (:func:`core.columns.history_name`): each row's window of
    ``source``'s target values (lag 0 and labels), ending at the row's own time."""
    from core.columns import history_name

    series = target_series(source, dataset)
    length = dataset.history_length
    windows: list[np.ndarray] = [np.empty(0)] * len(rows)
    for entity, index in rows.groupby(dataset.entity_column, sort=False).indices.items():
        own = series.get(str(entity))
        if own is None:
            raise KeyError(f"no target values of {entity!r} to forecast it from")
        block = own.windows(rows[EVENT_TIMESTAMP].iloc[index], length)
        for position, window in zip(index, block, strict=True):
            windows[position] = window
    out = rows.copy()
    out[history_name(dataset)] = pd.Series(windows, index=rows.index, dtype=object)
    return out


def seasonal_scale(values: np.ndarray, seasonal_period: int) -> float:
    """A series' scale as MASE takes it: the mean absolute change over one season of its known values
    (over one step where they hold less than two seasons, or where the seasonal changes are all zero).
    A constant series gets a millionth of its level (at least of 1), so that any error still counts."""
    values = values[~np.isnan(values)]
    for lag in dict.fromkeys((seasonal_period, 1)):
        if len(values) > 2 * lag:
            scale = float(np.mean(np.abs(values[lag:] - values[:-lag])))
            if scale > 0:
                return scale
    level = float(np.mean(np.abs(values))) if len(values) else 1.0
    return max(level, 1.0) * 1e-6
