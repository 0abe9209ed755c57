"""Reading and writing the forecast table.

Writers replace a whole day in one transaction, so a re-run of a day (a retry, a correction) leaves
exactly that day's new rows and nothing of the old. SQLite gets ``BEGIN IMMEDIATE`` for that (its
driver would start a transaction lazily, and a read-then-write one can fail with ``SQLITE_BUSY``);
times are stored in UTC and handed back timezone-aware on both databases.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, insert, inspect, select

from core.settings import Settings
from forecast_store.schema import BATCH, forecasts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ForecastRow:
    """One step of one issued forecast."""

    dataset: str
    entity_id: str
    data_date: date
    issue_time: datetime
    step: int
    target_time: datetime
    value: float
    model_name: str
    model_version: str
    source: str = BATCH
    dag_run_id: str | None = None


def engine(settings: Settings) -> Engine:
    """The process's engine of the settings' forecast database (one pool per URL)."""
    url = settings.forecast_store_url
    with _lock:
        if url not in _engines:
            _engines[url] = _create(url)
        return _engines[url]


def _create(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    made = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(made, "connect")
    def _autocommit_driver(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, starts transactions

    @event.listens_for(made, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return made


def upgrade(settings: Settings) -> None:
    """Bring the forecast table's schema to the newest migration (idempotent: Alembic records it)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine(settings).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def ready(settings: Settings) -> bool:
    """Whether the forecast table exists (a service may start before the first forecast is stored)."""
    return bool(inspect(engine(settings)).has_table(forecasts.name))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def replace_day(settings: Settings, dataset: str, data_date: date, rows: Iterable[ForecastRow]) -> int:
    """Replace the batch forecasts a dataset issued for ``data_date`` with ``rows``, in one transaction;
    returns how many were written."""
    now = datetime.now(UTC)
    values = [
        {
            **row.__dict__,
            "issue_time": _utc(row.issue_time),
            "target_time": _utc(row.target_time),
            "created_at": now,
        }
        for row in rows
    ]
    if any(v["dataset"] != dataset or v["data_date"] != data_date or v["source"] != BATCH for v in values):
        raise ValueError(f"replace_day({dataset}, {data_date}) takes that day's batch forecasts only")
    with engine(settings).begin() as connection:
        connection.execute(
            delete(forecasts).where(
                forecasts.c.dataset == dataset, forecasts.c.data_date == data_date, forecasts.c.source == BATCH
            )
        )
        if values:
            connection.execute(insert(forecasts), values)
    return len(values)


def issued(
    settings: Settings, dataset: str, entity_id: str | None = None, data_date: date | None = None, source: str = BATCH
) -> list[ForecastRow]:
    """Stored forecasts of a dataset, oldest issue first and by step: one entity's or every entity's, of
    one day or every day."""
    query = select(forecasts).where(forecasts.c.dataset == dataset, forecasts.c.source == source)
    if entity_id is not None:
        query = query.where(forecasts.c.entity_id == entity_id)
    if data_date is not None:
        query = query.where(forecasts.c.data_date == data_date)
    query = query.order_by(forecasts.c.data_date, forecasts.c.entity_id, forecasts.c.issue_time, forecasts.c.step)
    with engine(settings).connect() as connection:
        found = connection.execute(query).mappings().all()
    return [
        ForecastRow(
            dataset=r["dataset"],
            entity_id=r["entity_id"],
            data_date=r["data_date"],
            issue_time=_utc(r["issue_time"]),
            step=r["step"],
            target_time=_utc(r["target_time"]),
            value=r["value"],
            model_name=r["model_name"],
            model_version=r["model_version"],
            source=r["source"],
            dag_run_id=r["dag_run_id"],
        )
        for r in found
    ]


def latest_day(settings: Settings, dataset: str, source: str = BATCH) -> date | None:
    """The newest day a dataset's forecasts were issued for."""
    from sqlalchemy import func

    query = select(func.max(forecasts.c.data_date)).where(forecasts.c.dataset == dataset, forecasts.c.source == source)
    with engine(settings).connect() as connection:
        newest = connection.execute(query).scalar()
    return newest if isinstance(newest, date) else None
