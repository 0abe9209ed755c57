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
    index = pd.DatetimeIndex(stamps)
    return grid_positions(frequency, index, pd.DatetimeIndex([pd.Timestamp(start)] * len(index)))


def _nanos(stamps: pd.DatetimeIndex) -> np.ndarray:
    """Nanoseconds since the epoch (UTC for aware times), whatever the index's unit."""
    return np.asarray(stamps.as_unit("ns").asi8, dtype=np.int64)


def _stamps(nanos: np.ndarray, like: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Times from :func:`_nanos` values, in ``like``'s time zone and unit."""
    index = pd.DatetimeIndex(nanos.astype("datetime64[ns]"))
    if like.tz is not None:
        index = index.tz_localize("UTC").tz_convert(like.tz)
    return index.as_unit(like.unit)


def grid_positions(frequency: Frequency, stamps: pd.DatetimeIndex, starts: pd.DatetimeIndex) -> np.ndarray:
    """Each time's steps after its own series' start (``starts``: one per time) on the frequency grid
    that starts there; a time off that grid raises."""
    if frequency.is_fixed:
        step = frequency.fixed.value
        offsets = np.asarray(_nanos(stamps) - _nanos(starts), dtype=np.int64)
        if (offsets % step != 0).any():
            raise ValueError(f"times off the {frequency} grid of their series")
        return offsets // step
    return np.asarray(frequency.ordinals(stamps) - frequency.ordinals(starts), dtype=np.int64)


def trailing(values: np.ndarray, ends: np.ndarray, firsts: np.ndarray, length: int) -> np.ndarray:
    """(ends, length): the ``length`` points of ``values`` ending at each of ``ends``, oldest first;
    NaN for a point before its series' first (``firsts``: one per end)."""
    points = ends[:, None] + np.arange(1 - length, 1)
    return np.where(points >= firsts[:, None], values[np.maximum(points, 0)], np.nan)


@dataclass(frozen=True)
class LaidEnd:
    """Every series' grid (its first to its last time, a point per frequency step) laid end to end in
    one array, and where each row of the frame they came from lies on it: work on many series in one
    pass where a frame per series cost milliseconds each.

    ``rows``: the frame's rows in the order of their entities (a stable sort: each entity's rows in
    their order), rows without an entity left out; ``codes``: each row's entity (the index of
    ``names``, sorted); ``cell``: each row's point; ``first``: each point's series' first point."""

    rows: pd.DataFrame
    stamps: pd.DatetimeIndex
    names: np.ndarray
    codes: np.ndarray
    cell: np.ndarray
    first: np.ndarray
    size: int

    @classmethod
    def of(cls, frame: pd.DataFrame, key: str, time_column: str, frequency: Frequency) -> LaidEnd:
        rows = frame[frame[key].notna()].sort_values(key, kind="stable").reset_index(drop=True)
        stamps = pd.DatetimeIndex(pd.to_datetime(rows[time_column], utc=True))
        codes, names = pd.factorize(rows[key], sort=True)
        bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, np.int64)
        counts = np.diff(np.r_[bounds, len(codes)])
        starts = np.minimum.reduceat(_nanos(stamps), bounds) if len(codes) else np.zeros(0, np.int64)
        position = grid_positions(frequency, stamps, _stamps(np.repeat(starts, counts), stamps))
        lengths = np.maximum.reduceat(position, bounds) + 1 if len(codes) else np.zeros(0, np.int64)
        offsets = np.asarray(np.cumsum(lengths) - lengths, dtype=np.int64)
        cell = offsets[codes] + position
        first = np.repeat(offsets, lengths)
        return cls(rows, stamps, np.asarray(names), codes, cell, first, int(lengths.sum()))

    def grid(self, column: str) -> np.ndarray:
        """``column``'s values at their points (NaN where no row lies)."""
        grid = np.full(self.size, np.nan)
        grid[self.cell] = self.rows[column].to_numpy(dtype=np.float64, na_value=np.nan)
        return grid

    def lagged(self, grid: np.ndarray, lag: int, cells: np.ndarray | None = None) -> np.ndarray:
        """The value ``lag`` points before each of ``cells`` (every row's by default) on its own
        series' grid; NaN before the series began."""
        cells = self.cell if cells is None else cells
        source = cells - lag
        return np.where(source >= self.first[cells], grid[np.maximum(source, 0)], np.nan)

    def windows(self, grid: np.ndarray, length: int, cells: np.ndarray) -> np.ndarray:
        """(cells, length): the ``length`` values ending at each of ``cells``, oldest first; NaN
        before its series began."""
        return trailing(grid, cells, self.first[cells], length)


def history_frame(
    rows: pd.DataFrame, dataset: DatasetConfig, time_column: str, newest: pd.Timedelta | None = None
) -> pd.DataFrame:
    """From observed rows (entity, ``time_column``, target): each entity's history at each of its
    times (only those within ``newest`` of its newest one, where given), as a table of entity,
    ``event_timestamp`` and the history column (a list per row): the offline source of the online
    store's history. In the order of the entities, each entity's rows in their order."""
    from core.columns import history_name

    columns = [dataset.entity_column, EVENT_TIMESTAMP, history_name(dataset)]
    laid = LaidEnd.of(rows, dataset.entity_column, time_column, dataset.frequency)
    if not len(laid.codes):
        return pd.DataFrame(columns=columns)
    wanted = np.ones(len(laid.codes), dtype=bool)
    if newest is not None:
        bounds = np.flatnonzero(np.r_[True, laid.codes[1:] != laid.codes[:-1]])
        ends = np.maximum.reduceat(_nanos(laid.stamps), bounds)[laid.codes]
        wanted = _nanos(laid.stamps) > ends - newest.value
    windows = laid.windows(laid.grid(dataset.target), dataset.history_length, laid.cell[wanted])
    return pd.DataFrame(
        {
            dataset.entity_column: [str(name) for name in laid.names[laid.codes[wanted]]],
            EVENT_TIMESTAMP: laid.stamps[wanted],
            history_name(dataset): list(windows),
        }
    )


@dataclass(frozen=True)
class TargetGrids:
    """Every entity's target on its own grid, the grids laid end to end in ``values``: entity ``i``
    (``names[i]``) starts at ``starts[i]`` and holds ``values[offsets[i] : offsets[i] + lengths[i]]``."""

    frequency: Frequency
    names: list[str]
    starts: pd.DatetimeIndex
    offsets: np.ndarray
    lengths: np.ndarray
    values: np.ndarray

    def series(self) -> dict[str, GridSeries]:
        """Each entity's series, its values an array of its own (a copy, not a view into ``values``): a
        fit's numeric kernels may sum in another order where an array starts unaligned, so a series
        handed to a model in this process must be laid out as one shipped to a Ray worker is."""
        return {
            name: GridSeries(start=start, frequency=self.frequency, values=self.values[offset : offset + length].copy())
            for name, start, offset, length in zip(self.names, self.starts, self.offsets, self.lengths, strict=True)
        }

    def windows(self, entities: pd.Series, stamps: pd.DatetimeIndex, length: int) -> np.ndarray:
        """(rows, length): the ``length`` values of each row's entity ending at its time, oldest first,
        NaN before the series began."""
        codes = pd.Index(self.names).get_indexer([str(e) for e in entities])
        if (codes < 0).any():
            raise KeyError(f"no target values of {entities.iloc[int(np.argmax(codes < 0))]!r} to forecast it from")
        at = grid_positions(self.frequency, stamps, self.starts[codes])
        if len(at) and ((at < 0) | (at >= self.lengths[codes])).any():
            raise ValueError("a row's time lies outside its series")
        return trailing(self.values, self.offsets[codes] + at, self.offsets[codes], length)


def target_grids(frame: pd.DataFrame, dataset: DatasetConfig, with_labels: bool = True) -> TargetGrids:
    """Each entity's target as the frame's rows hold it: lag 0 at each row's time and, ``with_labels``,
    each label at its own time (so a training set's series runs to the newest row's last label); in
    one pass over the rows, whatever the number of entities."""
    frequency = dataset.frequency
    lag0 = lag_name(dataset.target, 0)
    labels = label_names(dataset) if with_labels else []
    known = [c for c in labels if c in frame.columns]
    if lag0 not in frame.columns and not known:
        raise ValueError(f"rows of {dataset.name} carry neither {lag0} nor labels: no target values to forecast from")
    rows = frame[frame[dataset.entity_column].notna()]
    codes, names = pd.factorize(rows[dataset.entity_column], sort=True)
    stamps = pd.DatetimeIndex(rows[EVENT_TIMESTAMP])
    first, newest = np.full(len(names), np.iinfo(np.int64).max), np.full(len(names), np.iinfo(np.int64).min)
    np.minimum.at(first, codes, _nanos(stamps))
    np.maximum.at(newest, codes, _nanos(stamps))
    starts, ends = _stamps(first, stamps), _stamps(newest, stamps)
    if lag0 not in rows.columns:
        starts = frequency.shift_each(starts, np.ones(len(names), dtype=np.int64))  # the first value known: y_1
    ends = frequency.shift_each(ends, np.full(len(names), len(known), dtype=np.int64))
    lengths = grid_positions(frequency, ends, starts) + 1
    offsets = np.asarray(np.cumsum(lengths) - lengths, dtype=np.int64)
    values = np.full(int(lengths.sum()), np.nan)
    base = grid_positions(frequency, stamps, starts[codes])
    cell = offsets[codes] + base
    # Labels first, lag 0 last: where both give a value for the same time, the observed one wins.
    for offset, column in enumerate(known, start=1):
        column_values = rows[column].to_numpy(dtype=np.float64)
        given = ~np.isnan(column_values)
        values[cell[given] + offset] = column_values[given]
    if lag0 in rows.columns:
        observed = rows[lag0].to_numpy(dtype=np.float64)
        given = ~np.isnan(observed) & (base >= 0)
        values[cell[given]] = observed[given]
    return TargetGrids(frequency, [str(name) for name in names], starts, offsets, lengths, values)


def target_series(frame: pd.DataFrame, dataset: DatasetConfig, with_labels: bool = True) -> dict[str, GridSeries]:
    """Each entity's target (:func:`target_grids`), a series of its own."""
    return target_grids(frame, dataset, with_labels).series()


def with_history(rows: pd.DataFrame, source: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """``rows`` with the history column (:func:`core.columns.history_name`): each row's window of
    ``source``'s target values (lag 0 and labels), ending at the row's own time."""
    from core.columns import history_name

    grids = target_grids(source, dataset)
    windows = grids.windows(
        rows[dataset.entity_column], pd.DatetimeIndex(rows[EVENT_TIMESTAMP]), dataset.history_length
    )
    out = rows.copy()
    out[history_name(dataset)] = pd.Series(list(windows), index=rows.index, dtype=object)
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
