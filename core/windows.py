"""Time windows of a logical date: which instants a run's data date covers.

A run for logical date ``D`` sees the data known at the end of ``D`` (UTC): ingest keeps rows
before it, validation measures freshness against it, materialization loads features up to it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


def end_of(logical_date: date) -> datetime:
    """The (exclusive) end of a logical date in UTC: data up to this instant belongs to it."""
    return datetime.combine(logical_date + timedelta(days=1), time(), tzinfo=UTC)
