"""The step between a dataset's rows: a fixed duration or a calendar one.

A fixed step (an hour, a day, 15 minutes, a week) has one length; a calendar step (a month, a quarter,
a year) does not: January holds 31 days and February 28 or 29, so "30 days" puts most monthly rows off
any grid. Both kinds are a grid of timestamps numbered by integers (the grid's ordinals), and every
part of the platform steps along that grid (the data check's grid and gap rules, the feature rows, the
backtest windows, a forecast's target times) through this one type rather than adding durations.

Written in a dataset config as an ISO 8601 duration or a pandas offset alias:

- fixed: ``PT1H``, ``PT15M``, ``P1D`` (or ``h``, ``15min``, ``D``), on the grid that starts at
  1970-01-01 00:00 UTC; a whole number of weeks (``P1W``, ``P7D``) on Mondays (ISO weeks), or on
  another weekday with ``W-SUN`` ... ``W-SAT``;
- calendar: ``P1M`` (``MS``, the first of each month), ``P3M`` (``QS``, quarters from January),
  ``P1Y`` (``YS``, years from January), or the month's last day with ``ME``, ``QE``, ``YE``;
  quarters and years may start in another month (``QS-FEB``, ``YS-JUL``), as pandas names them.

Timestamps are UTC; a calendar grid point is at midnight. The class parses and compares without
pandas (a DAG file reads its dataset config when it is parsed, which imports no data library); the
grid's arithmetic imports it when it is first used.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_DAY = 86_400_000_000_000  # nanoseconds
_WEEK = 7 * _DAY
_EPOCH = 0
_MONDAY = 4 * _DAY  # 1970-01-05, the first Monday after the epoch
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MEAN_MONTH = timedelta(days=365.2425 / 12)
_CALENDAR_ISO = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?$")
_CALENDAR_ALIAS = re.compile(r"^(\d*)(MS|ME|QS|QE|YS|YE)(?:-([A-Z]{3}))?$")


class Frequency:
    """A grid of timestamps: a fixed step from an anchor, or every ``months`` calendar months.

    Immutable and hashable; ``str()`` gives the text it was written as (normalised), which parses back.
    """

    __slots__ = ("_anchor", "_end", "_first_month", "_months", "_nanos", "_text")

    def __init__(
        self,
        *,
        step: timedelta | None = None,
        anchor: int | None = None,
        months: int | None = None,
        first_month: int = 0,
        month_end: bool = False,
        text: str | None = None,
    ):
        if (step is None) == (months is None):
            raise ValueError("a frequency is either a fixed step or a number of months")
        if step is not None:
            nanos = _nanos(step)
            if nanos <= 0:
                raise ValueError(f"a frequency's step must be positive, not {step}")
            self._nanos: int | None = nanos
            self._anchor = anchor if anchor is not None else (_MONDAY if nanos % _WEEK == 0 else _EPOCH)
            self._months: int | None = None
        else:
            assert months is not None
            if months <= 0:
                raise ValueError(f"a frequency's months must be positive, not {months}")
            self._nanos, self._anchor, self._months = None, _EPOCH, months
        self._first_month = first_month % (months or 1)
        self._end = month_end
        self._text = text or self._describe()

    # -- parsing -------------------------------------------------------------------------------

    @classmethod
    def parse(cls, value: Any) -> Frequency:
        """A frequency from a config value: a :class:`Frequency`, a timedelta, seconds, an ISO 8601
        duration or a pandas offset alias (the module's docstring lists them)."""
        if isinstance(value, Frequency):
            return value
        if isinstance(value, timedelta):
            return cls(step=value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls(step=timedelta(seconds=value))
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"a frequency is an ISO 8601 duration (PT1H, P1D, P1M) or a pandas alias, not {value!r}")
        text = value.strip()
        upper = text.upper()
        if match := _CALENDAR_ISO.match(upper):
            years, months = (int(g) if g else 0 for g in match.groups())
            if years or months:
                return cls(months=12 * years + months, text=upper)
        if match := _CALENDAR_ALIAS.match(upper):
            count, kind, start = match.groups()
            per = {"M": 1, "Q": 3, "Y": 12}[kind[0]]
            if start is not None and kind[0] == "M":
                raise ValueError(f"monthly frequency {text!r} takes no starting month")
            first = _MONTHS.index(start) if start in _MONTHS else 0
            if start is not None and start not in _MONTHS:
                raise ValueError(f"unknown month {start!r} in frequency {text!r}")
            months = per * (int(count) if count else 1)
            # pandas names a quarter or year that *ends* in a month by that month; the grid numbers the
            # period by its first month.
            if kind.endswith("E") and start is not None:
                first = (first + 1) % 12
            return cls(months=months, first_month=first, month_end=kind.endswith("E"), text=upper)
        if upper.startswith("W-"):
            day = upper[2:]
            if day not in _WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} in frequency {text!r}")
            return cls(step=timedelta(days=7), anchor=_MONDAY + _WEEKDAYS.index(day) * _DAY, text=upper)
        if upper.startswith("P"):
            from pydantic import TypeAdapter, ValidationError

            try:
                step = TypeAdapter(timedelta).validate_python(upper)
            except ValidationError:
                raise ValueError(f"frequency {text!r} is not an ISO 8601 duration") from None
            return cls(step=step)
        import pandas as pd  # a pandas alias (h, 15min, D): pandas reads it

        try:
            offset = pd.tseries.frequencies.to_offset(text)
        except ValueError:
            raise ValueError(f"frequency {text!r} is neither an ISO 8601 duration nor a pandas offset alias") from None
        if not isinstance(offset, pd.offsets.Tick):
            raise ValueError(f"frequency {text!r}: use P1M/MS/ME, P3M/QS/QE, P1Y/YS/YE or W-<DAY> for calendar steps")
        return cls(step=pd.Timedelta(offset).to_pytimedelta())

    def _describe(self) -> str:
        if self._nanos is not None:
            if self._anchor not in (_EPOCH, _MONDAY) and self._nanos == _WEEK:
                return "W-" + _WEEKDAYS[(self._anchor - _MONDAY) // _DAY % 7]
            return _iso(self._nanos)
        assert self._months is not None
        if self._first_month or self._end:
            kind = {1: "M", 3: "Q", 12: "Y"}.get(self._months)
            count = "" if kind else str(self._months)
            kind = kind or "M"
            suffix = "E" if self._end else "S"
            month = (self._first_month - 1) % 12 if self._end else self._first_month
            return f"{count}{kind}{suffix}" + (f"-{_MONTHS[month]}" if kind != "M" else "")
        years, months = divmod(self._months, 12)
        return "P" + (f"{years}Y" if years else "") + (f"{months}M" if months else "")

    # -- what it is ----------------------------------------------------------------------------

    @property
    def is_fixed(self) -> bool:
        """Every step lasts as long (an hour, a day, a week); a calendar step does not."""
        return self._nanos is not None

    @property
    def fixed(self) -> pd.Timedelta:
        """The step's one length (a calendar frequency has none)."""
        import pandas as pd

        if self._nanos is None:
            raise ValueError(f"{self} is a calendar frequency: its steps differ in length")
        return pd.Timedelta(self._nanos)

    @property
    def months(self) -> int | None:
        """Calendar months per step (a quarter: 3, a year: 12); None for a fixed step."""
        return self._months

    @property
    def nominal(self) -> pd.Timedelta:
        """A step's mean length (a month: 365.2425 / 12 days): for durations measured in steps."""
        import pandas as pd

        if self._nanos is not None:
            return pd.Timedelta(self._nanos)
        return pd.Timedelta((self._months or 1) * _MEAN_MONTH)

    @property
    def shortest(self) -> timedelta:
        """No two grid points lie closer than this (a month: 28 days, a quarter: 89, a year: 365)."""
        if self._nanos is not None:
            return timedelta(microseconds=self._nanos // 1000)
        months = self._months or 1
        return timedelta(days=28 if months == 1 else 89 if months == 3 else 28 * months + 29 * (months // 12))

    def steps_in(self, duration: timedelta) -> int:
        """Whole steps in ``duration`` (by the mean step: a 365-day window holds 11 months and change, 11)."""
        import pandas as pd

        return int(pd.Timedelta(duration) // self.nominal)

    def whole_steps(self, duration: timedelta) -> int | None:
        """Steps in ``duration`` where it is a whole number of this fixed step, else None (a calendar
        step never divides a duration)."""
        if self._nanos is None:
            return None
        nanos = _nanos(duration)
        return nanos // self._nanos if nanos % self._nanos == 0 and nanos >= self._nanos else None

    # -- the grid ------------------------------------------------------------------------------

    def _floor(self, stamps: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """Each stamp's ordinal (the grid point at or before it) and whether it lies on the grid."""
        import numpy as np

        stamps = _utc(stamps)
        if self._nanos is not None:
            delta = np.asarray(stamps.asi8 - self._anchor, dtype=np.int64)
            return delta // self._nanos, delta % self._nanos == 0
        months = np.asarray(stamps.year * 12 + stamps.month - 1 - self._first_month, dtype=np.int64)
        midnight = np.asarray(stamps.asi8 % 86_400_000_000_000 == 0)
        n = self._months or 1
        period = months // n
        if self._end:
            # The grid point is the period's last day: a stamp before it belongs to the previous one.
            reached = (months % n == n - 1) & np.asarray(stamps.is_month_end)
            return np.where(reached, period, period - 1), reached & midnight
        return period, (months % n == 0) & np.asarray(stamps.day == 1) & midnight

    def _floor_one(self, stamp: pd.Timestamp | datetime) -> int:
        """One timestamp's ordinal: the grid point at or before it."""
        import pandas as pd

        return int(self._floor(_utc(pd.DatetimeIndex([pd.Timestamp(stamp)])))[0][0])

    def on_grid(self, stamps: pd.DatetimeIndex | pd.Series) -> np.ndarray:
        """Whether each timestamp is a grid point."""
        import pandas as pd

        return self._floor(pd.DatetimeIndex(stamps))[1]

    def offgrid_seconds(self, stamps: pd.DatetimeIndex | pd.Series) -> np.ndarray:
        """Seconds from the grid point at or before each timestamp (0: on the grid)."""
        import numpy as np
        import pandas as pd

        index = _utc(pd.DatetimeIndex(stamps))
        ordinals, _ = self._floor(index)
        return np.asarray((index - self.stamps(ordinals)).total_seconds(), dtype=np.float64)

    def ordinals(self, stamps: pd.DatetimeIndex | pd.Series) -> np.ndarray:
        """Each timestamp's grid number; a timestamp off the grid raises."""
        import pandas as pd

        index = pd.DatetimeIndex(stamps)
        ordinals, on = self._floor(index)
        if not on.all():
            raise ValueError(f"timestamps off the {self} grid, e.g. {index[~on][0]}")
        return ordinals

    def ordinal(self, stamp: datetime | pd.Timestamp) -> int:
        """One timestamp's grid number (off the grid raises)."""
        import pandas as pd

        return int(self.ordinals(pd.DatetimeIndex([pd.Timestamp(stamp)]))[0])

    def stamps(self, ordinals: np.ndarray | list[int]) -> pd.DatetimeIndex:
        """The grid points numbered ``ordinals``."""
        import numpy as np
        import pandas as pd

        numbers = np.asarray(ordinals, dtype=np.int64)
        if self._nanos is not None:
            return pd.DatetimeIndex(self._anchor + numbers * self._nanos, tz="UTC")
        assert self._months is not None
        months = numbers * self._months + self._first_month + (self._months if self._end else 0)
        years, month = np.divmod(months, 12)
        firsts = pd.to_datetime({"year": years, "month": month + 1, "day": np.ones_like(years)}, utc=True)
        index = pd.DatetimeIndex(firsts)
        return index - pd.Timedelta(days=1) if self._end else index

    def shift(self, stamp: pd.Timestamp | datetime, steps: int) -> pd.Timestamp:
        """``steps`` grid steps after ``stamp`` (before, when negative).

        A fixed step is added as a duration, so a stamp off the grid stays as far off it; a calendar
        step counts from the grid point at or before the stamp.
        """
        import pandas as pd

        stamp = pd.Timestamp(stamp)
        if self._nanos is not None:
            return stamp + steps * pd.Timedelta(self._nanos)
        return _like(self.stamps([self._floor_one(stamp) + steps]), stamp)[0]

    def ahead(self, stamp: datetime, steps: int) -> list[datetime]:
        """The ``steps`` grid points after ``stamp``, as datetimes of its kind (a forecast's target times)."""
        import numpy as np

        if self._nanos is not None:
            step = timedelta(microseconds=self._nanos / 1000)
            return [stamp + k * step for k in range(1, steps + 1)]
        points = self.stamps(self._floor_one(stamp) + np.arange(1, steps + 1))
        return list(_like(points, stamp).to_pydatetime())

    def shift_each(self, stamps: pd.DatetimeIndex | pd.Series, steps: np.ndarray | list[int]) -> pd.DatetimeIndex:
        """Each timestamp moved by its own number of steps (as :meth:`shift`)."""
        import numpy as np
        import pandas as pd

        index = pd.DatetimeIndex(stamps)
        counts = np.asarray(steps, dtype=np.int64)
        if self._nanos is not None:
            return index + pd.to_timedelta(counts * self._nanos, unit="ns")
        return _like(self.stamps(self._floor(_utc(index))[0] + counts), index)

    def steps_between(self, start: pd.Timestamp | datetime, end: pd.Timestamp | datetime) -> int:
        """Grid steps from ``start`` to ``end`` (both on the grid)."""
        import pandas as pd

        if self._nanos is not None:
            return round((pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta(self._nanos))
        return self.ordinal(end) - self.ordinal(start)

    def range(self, start: pd.Timestamp | datetime, end: pd.Timestamp | datetime) -> pd.DatetimeIndex:
        """The grid points from ``start`` to ``end``, both included (``start`` on the grid)."""
        import numpy as np
        import pandas as pd

        if self._nanos is not None:
            return pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=pd.Timedelta(self._nanos))
        return _like(self.stamps(np.arange(self.ordinal(start), self._floor_one(end) + 1)), start)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """As a pydantic field: parsed from text (or a timedelta), written back as its text."""
        from pydantic_core import core_schema

        text = core_schema.plain_serializer_function_ser_schema(str, return_schema=core_schema.str_schema())
        return core_schema.no_info_plain_validator_function(cls.parse, serialization=text)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "examples": ["PT1H", "P1D", "P1W", "P1M", "P3M", "P1Y"]}

    # -- value semantics -----------------------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        return (self._nanos, self._anchor, self._months, self._first_month, self._end)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frequency) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Frequency({self._text!r})"


def _like(points: pd.DatetimeIndex, model: Any) -> pd.DatetimeIndex:
    """``points`` (UTC) as aware or naive as ``model`` (a timestamp, datetime or index)."""
    return points if model.tzinfo is not None else points.tz_localize(None)


def _nanos(duration: timedelta) -> int:
    """A duration in nanoseconds, exactly (a timedelta holds microseconds; pandas' Timedelta nanoseconds)."""
    value = getattr(duration, "value", None)  # pandas.Timedelta
    if isinstance(value, int):
        return value
    return (duration.days * 86_400 + duration.seconds) * 1_000_000_000 + duration.microseconds * 1_000


def _utc(stamps: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """In UTC and in nanoseconds (the grid's arithmetic reads the integers; parquet gives microseconds)."""
    utc = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    return utc.as_unit("ns")


def _iso(nanos: int) -> str:
    """A fixed step (nanoseconds) as ISO 8601 (P1D, PT1H, PT15M, P1DT12H)."""
    if nanos % _WEEK == 0:
        return f"P{nanos // _WEEK}W"
    days, rest = divmod(nanos, _DAY)
    hours, rest = divmod(rest, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = rest / 1e9
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    time += f"{seconds:g}S" if seconds else ""
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
