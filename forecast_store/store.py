"""Reading and writing the forecast table.

Writers replace a whole day in one transaction, so a re-run of a day (a retry, a correction) leaves
exactly that day's new rows and nothing of the old. SQLite gets ``BEGIN IMMEDIATE`` for that (its
driver would start a transaction lazily, and a read-then-write one can fail with ``SQLITE_BUSY``);
times are stored in UTC and handed back timezone-aware on both databases.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
)
from sqlalchemy.exc import DBAPIError

from core.settings import Settings
from forecast_store.schema import (
    BATCH,
    DAILY_SOURCES,
    ONLINE,
    ONLINE_KEY,
    forecast_intervals,
    forecast_scores,
    forecast_spool_marks,
    forecasts,
)

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
    answers: int = 1  # online: how many times the service answered this forecast
    intervals: tuple[tuple[float, float, float], ...] = ()  # (level, lower, upper), narrowest first


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
        dbapi_connection.execute("PRAGMA foreign_keys = ON")  # a replaced forecast takes its score along

    @event.listens_for(made, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return made


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the forecast table's schema to the newest migration, or to ``revision`` (idempotent:
    Alembic records it)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine(settings).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def ready(settings: Settings) -> bool:
    """Whether the forecast table exists (a service may start before the first forecast is stored)."""
    return bool(inspect(engine(settings)).has_table(forecasts.name))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


_APPENDED = (
    "dataset", "entity_id", "source", "data_date", "issue_time", "step", "target_time", "value", "model_name",
    "model_version", "dag_run_id", "created_at", "answers",
)  # fmt: skip


# Rows a day's replacement sends to the database at a time: the day's rows come from an iterable
# (a batch forecast of many entities yields them a part at a time) and are never all in memory.
REPLACE_CHUNK = 20_000


def replace_day(settings: Settings, dataset: str, data_date: date, rows: Iterable[ForecastRow]) -> int:
    """Replace the forecasts a dataset's batch issued for ``data_date`` (the champion's, source
    ``batch``, and the shadow versions', source ``shadow``) with ``rows``, in one transaction; returns
    how many were written. ``rows`` are read :data:`REPLACE_CHUNK` at a time, each chunk inserted
    before the next is read; a row of another day or source fails the whole replacement, and the
    day keeps the rows it had."""
    now = datetime.now(UTC)
    written = 0
    with engine(settings).begin() as connection:
        connection.execute(
            delete(forecasts).where(
                forecasts.c.dataset == dataset,
                forecasts.c.data_date == data_date,
                forecasts.c.source.in_(DAILY_SOURCES),
            )
        )  # their bands go with them (ON DELETE CASCADE)
        remaining = iter(rows)
        while given := list(itertools.islice(remaining, REPLACE_CHUNK)):
            values = [
                {
                    **{k: v for k, v in row.__dict__.items() if k != "intervals"},
                    "issue_time": _utc(row.issue_time),
                    "target_time": _utc(row.target_time),
                    "created_at": now,
                }
                for row in given
            ]
            if any(
                v["dataset"] != dataset or v["data_date"] != data_date or v["source"] not in DAILY_SOURCES
                for v in values
            ):
                raise ValueError(
                    f"replace_day({dataset}, {data_date}) takes that day's batch and shadow forecasts only"
                )
            if connection.dialect.name == "postgresql":
                _copy_day_rows(connection, values, given)
            else:
                inserted = connection.execute(
                    insert(forecasts).returning(forecasts.c.id, sort_by_parameter_order=True), values
                )
                bands = [
                    {"forecast_id": forecast_id, "level": level, "lower": lower, "upper": upper}
                    for forecast_id, row in zip(inserted.scalars().all(), given, strict=True)
                    for level, lower, upper in row.intervals
                ]
                if bands:
                    connection.execute(insert(forecast_intervals), bands)
            written += len(values)
    return written


_COPIED = ("id", *_APPENDED)
_BANDS = ("forecast_id", "level", "lower", "upper")


def _copy_day_rows(connection: Connection, values: list[dict[str, Any]], given: list[ForecastRow]) -> None:
    """PostgreSQL: a chunk of a day's rows and their bands through ``COPY``, in the connection's
    transaction. The rows' ids are drawn from the table's own sequence first (what an insert takes
    them from), so that the bands can name their forecasts. An ``INSERT`` of many rows costs about
    ten times as much: the driver rewrites every batch's statement with its thousands of parameters
    before it sends it (a day of 100,000 series is 1.4 million rows and their bands)."""
    import psycopg

    driver: Any = connection.connection.driver_connection  # psycopg's, in the transaction of ``connection``
    with driver.cursor() as cursor:
        try:
            drawn = cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('forecasts', 'id')) FROM generate_series(1, %s)", (len(values),)
            )
            ids = [int(row[0]) for row in drawn.fetchall()]
            with cursor.copy(f"COPY forecasts ({', '.join(_COPIED)}) FROM STDIN") as copy:
                for forecast_id, value in zip(ids, values, strict=True):
                    copy.write_row((forecast_id, *(value[column] for column in _APPENDED)))
            with cursor.copy(f"COPY forecast_intervals ({', '.join(_BANDS)}) FROM STDIN") as copy:
                for forecast_id, row in zip(ids, given, strict=True):
                    for band in row.intervals:
                        copy.write_row((forecast_id, *band))
        except psycopg.Error as error:  # as SQLAlchemy raises it for an insert: a duplicate is an IntegrityError
            raise DBAPIError.instance("COPY forecasts", None, error, psycopg.Error) from error


def append(settings: Settings, rows: Iterable[ForecastRow], mark: tuple[str, int] | None = None) -> int:
    """Add the service's online forecasts in one transaction; returns how many rows were given.

    ``mark`` (a spool segment and the position its rows end at) is recorded in the same transaction:
    rows and the mark of how far they go are written together or not at all.

    A forecast already stored (same entity, features' event time, step and version) is not stored
    again: its ``answers`` grow by the new row's (what it holds stays the first answer's, which its
    score is of, bands included). A row's bands go to ``forecast_intervals`` in the same transaction.

    The service appends thousands of rows a second under load, from a thread that shares the GIL
    with the requests: the rows go to the driver's ``executemany`` as plain tuples, in the forms
    SQLAlchemy itself stores (on SQLite: its text form of a UTC time, which reads come back from),
    not through SQLAlchemy's per-value bind processing, which costs several times the insert.
    """
    made = engine(settings)
    on_sqlite = made.dialect.name == "sqlite"

    known: dict[datetime, Any] = {}  # the same few times recur in every row of a batch

    def moment(value: datetime) -> Any:
        if value not in known:
            known[value] = _utc(value).strftime("%Y-%m-%d %H:%M:%S.%f") if on_sqlite else _utc(value)
        return known[value]

    now = moment(datetime.now(UTC))
    rows = list(rows)
    values = [
        (r.dataset, r.entity_id, r.source, r.data_date.isoformat() if on_sqlite else r.data_date, moment(r.issue_time),
         r.step, moment(r.target_time), r.value, r.model_name, r.model_version, r.dag_run_id, now, r.answers)
        for r in rows
    ]  # fmt: skip
    # A band row finds its forecast by the online key; a forecast stored before keeps its first bands.
    bands = [
        (level, lower, upper, r.dataset, r.entity_id, moment(r.issue_time), r.step, r.model_name, r.model_version)
        for r in rows
        for level, lower, upper in r.intervals
    ]
    if any(v[2] in DAILY_SOURCES for v in values):
        raise ValueError("batch and shadow forecasts are written a day at a time (replace_day)")
    if any(v[2] != ONLINE for v in values):
        raise ValueError(f"append takes the service's forecasts (source {ONLINE!r}) only")
    marker = "?" if made.dialect.paramstyle == "qmark" else "%s"
    table = forecasts.name
    statement = (
        f"INSERT INTO {table} ({', '.join(_APPENDED)}) VALUES ({', '.join([marker] * len(_APPENDED))}) "
        f"ON CONFLICT ({', '.join(ONLINE_KEY)}) WHERE source = '{ONLINE}' "
        f"DO UPDATE SET answers = {table}.answers + excluded.answers"
    )
    key = " AND ".join(f"{column} = {marker}" for column in ONLINE_KEY)
    band_statement = (
        f"INSERT INTO {forecast_intervals.name} (forecast_id, level, lower, upper) "
        f"SELECT id, {marker}, {marker}, {marker} FROM {table} WHERE source = '{ONLINE}' AND {key} "
        "ON CONFLICT (forecast_id, level) DO NOTHING"
    )
    if values or mark:
        with made.begin() as connection:
            if values:
                connection.exec_driver_sql(statement, values)
            if bands:
                connection.exec_driver_sql(band_statement, bands)
            if mark:
                connection.exec_driver_sql(
                    f"INSERT INTO {forecast_spool_marks.name} (segment, position, updated_at) "
                    f"VALUES ({marker}, {marker}, {marker}) ON CONFLICT (segment) "
                    "DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                    (mark[0], mark[1], now),
                )
    return len(values)


def spool_mark(settings: Settings, segment: str) -> int:
    """The position up to which a spool segment's forecasts are in the table (0: none yet)."""
    query = select(forecast_spool_marks.c.position).where(forecast_spool_marks.c.segment == segment)
    with engine(settings).connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def forget_spool_mark(settings: Settings, segment: str) -> None:
    """Drop the mark of a segment that was drained and deleted."""
    with engine(settings).begin() as connection:
        connection.execute(delete(forecast_spool_marks).where(forecast_spool_marks.c.segment == segment))


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
        bands = _bands(connection, [r["id"] for r in found])
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
            answers=r["answers"],
            intervals=bands.get(r["id"], ()),
        )
        for r in found
    ]


def _bands(connection: Any, ids: list[int]) -> dict[int, tuple[tuple[float, float, float], ...]]:
    """The (level, lower, upper) bands of each forecast id that has any, narrowest level first."""
    found: dict[int, list[tuple[float, float, float]]] = {}
    if not inspect(connection).has_table(forecast_intervals.name):  # a table of before revision 0005
        return {}
    for start in range(0, len(ids), 500):  # bound the statement's parameters
        query = select(forecast_intervals).where(forecast_intervals.c.forecast_id.in_(ids[start : start + 500]))
        for row in connection.execute(query).mappings():
            found.setdefault(row["forecast_id"], []).append((row["level"], row["lower"], row["upper"]))
    return {forecast_id: tuple(sorted(bands)) for forecast_id, bands in found.items()}


def latest_day(settings: Settings, dataset: str, source: str = BATCH) -> date | None:
    """The newest day a dataset's forecasts were issued for."""
    query = select(func.max(forecasts.c.data_date)).where(forecasts.c.dataset == dataset, forecasts.c.source == source)
    with engine(settings).connect() as connection:
        newest = connection.execute(query).scalar()
    return newest if isinstance(newest, date) else None


@dataclass(frozen=True)
class DueForecast:
    """A stored forecast whose target time has passed, with its row id (what its score points to)."""

    id: int
    entity_id: str
    source: str
    step: int
    target_time: datetime
    value: float


@dataclass(frozen=True)
class Score:
    """A forecast scored against its actual, and seasonal naive's forecast of the same target."""

    forecast_id: int
    dataset: str
    target_date: date
    actual: float
    error: float
    naive_value: float | None
    naive_error: float | None
    actuals_date: date
    dag_run_id: str | None = None


def _due_query(dataset: str, until: datetime) -> Select[Any]:
    joined = forecasts.outerjoin(forecast_scores, forecast_scores.c.forecast_id == forecasts.c.id)
    return (
        select(forecasts, forecast_scores.c.id.label("score_id"))
        .select_from(joined)
        .where(forecasts.c.dataset == dataset, forecasts.c.target_time < _utc(until))
    )


def _due(dataset: str, until: datetime, rescore_from: datetime) -> Select[Any]:
    return _due_query(dataset, until).where(
        or_(forecast_scores.c.id.is_(None), forecasts.c.target_time >= _utc(rescore_from))
    )


def due_entities(settings: Settings, dataset: str, until: datetime, rescore_from: datetime) -> list[str]:
    """The entities that have :func:`due` forecasts, sorted."""
    due_rows = _due(dataset, until, rescore_from).subquery()
    query = select(due_rows.c.entity_id).distinct()
    with engine(settings).connect() as connection:
        return sorted(str(name) for name in connection.execute(query).scalars())


def due(
    settings: Settings, dataset: str, until: datetime, rescore_from: datetime, entities: list[str] | None = None
) -> list[DueForecast]:
    """Forecasts whose target time is before ``until`` that have no score yet, and those whose target
    time is at or after ``rescore_from`` (scored or not: their actuals just arrived, maybe corrected);
    of ``entities`` only, where given."""
    query = _due(dataset, until, rescore_from)
    if entities is not None:
        query = query.where(forecasts.c.entity_id.in_(entities))
    with engine(settings).connect() as connection:
        found = connection.execute(query.order_by(forecasts.c.id)).mappings().all()
    return [
        DueForecast(
            id=r["id"],
            entity_id=r["entity_id"],
            source=r["source"],
            step=r["step"],
            target_time=_utc(r["target_time"]),
            value=r["value"],
        )
        for r in found
    ]


def count_due_unscored(settings: Settings, dataset: str, until: datetime) -> int:
    """How many forecasts with a target time before ``until`` have no score."""
    query = select(func.count()).select_from(
        _due_query(dataset, until).where(forecast_scores.c.id.is_(None)).subquery()
    )
    with engine(settings).connect() as connection:
        return int(connection.execute(query).scalar_one())


def replace_scores(settings: Settings, scores: Iterable[Score]) -> int:
    """Store scores, each replacing any earlier score of its forecast, in one transaction."""
    now = datetime.now(UTC)
    values = [{**score.__dict__, "scored_at": now} for score in scores]
    ids = [v["forecast_id"] for v in values]
    with engine(settings).begin() as connection:
        for start in range(0, len(ids), 500):  # bound the statement's parameters
            connection.execute(
                delete(forecast_scores).where(forecast_scores.c.forecast_id.in_(ids[start : start + 500]))
            )
        if values:
            connection.execute(insert(forecast_scores), values)
    return len(values)


SCORED_COLUMNS = (
    "forecast_id", "entity_id", "source", "data_date", "issue_time", "step", "target_time", "value", "model_name",
    "model_version", "target_date", "actual", "error", "naive_value", "naive_error", "actuals_date",
)  # fmt: skip


def scored(
    settings: Settings, dataset: str, target_from: date | None = None, target_to: date | None = None
) -> list[dict[str, Any]]:
    """Scored forecasts of a dataset (forecast and score side by side, ``SCORED_COLUMNS``), of the
    target days from ``target_from`` to ``target_to`` (both included; open when None)."""
    query = (
        select(
            forecasts.c.id.label("forecast_id"),
            *(forecasts.c[name] for name in SCORED_COLUMNS[1:10]),
            *(forecast_scores.c[name] for name in SCORED_COLUMNS[10:]),
        )
        .select_from(forecasts.join(forecast_scores, forecast_scores.c.forecast_id == forecasts.c.id))
        .where(forecasts.c.dataset == dataset)
        .order_by(forecasts.c.id)
    )
    if target_from is not None:
        query = query.where(forecast_scores.c.target_date >= target_from)
    if target_to is not None:
        query = query.where(forecast_scores.c.target_date <= target_to)
    with engine(settings).connect() as connection:
        found = connection.execute(query).mappings().all()
    return [{**row, "issue_time": _utc(row["issue_time"]), "target_time": _utc(row["target_time"])} for row in found]


def scored_intervals(
    settings: Settings, dataset: str, target_from: date | None = None, target_to: date | None = None
) -> list[dict[str, Any]]:
    """The bands of scored forecasts with their actual: one row per forecast and level (forecast id,
    source, step, model version, target day, level, lower, upper, actual)."""
    query = (
        select(
            forecasts.c.id.label("forecast_id"),
            forecasts.c.source,
            forecasts.c.step,
            forecasts.c.model_version,
            forecast_scores.c.target_date,
            forecast_intervals.c.level,
            forecast_intervals.c.lower,
            forecast_intervals.c.upper,
            forecast_scores.c.actual,
        )
        .select_from(
            forecasts.join(forecast_scores, forecast_scores.c.forecast_id == forecasts.c.id).join(
                forecast_intervals, forecast_intervals.c.forecast_id == forecasts.c.id
            )
        )
        .where(forecasts.c.dataset == dataset)
        .order_by(forecasts.c.id, forecast_intervals.c.level)
    )
    if target_from is not None:
        query = query.where(forecast_scores.c.target_date >= target_from)
    if target_to is not None:
        query = query.where(forecast_scores.c.target_date <= target_to)
    with engine(settings).connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings().all()]


# What a scored forecast's accuracy is summed up by (``level``: a band's, for :func:`band_accuracy`).
ACCURACY_KEYS = {
    "source": forecasts.c.source,
    "step": forecasts.c.step,
    "entity_id": forecasts.c.entity_id,
    "model_name": forecasts.c.model_name,
    "model_version": forecasts.c.model_version,
    "target_date": forecast_scores.c.target_date,
    "level": forecast_intervals.c.level,
}


@dataclass(frozen=True)
class Accuracy:
    """The scored forecasts of one group (``key``: its values of the columns grouped by): how many,
    their MAE, and on the targets seasonal naive could forecast (``fair`` of them) naive's MAE and
    theirs."""

    key: tuple[Any, ...]
    forecasts: int
    mae: float
    fair: int
    naive_mae: float | None
    mae_on_naive_targets: float | None


@dataclass(frozen=True)
class BandAccuracy:
    """One group's bands (``key`` ends with their level): how many, the share of actuals inside, the
    mean width and the mean interval score (:func:`model_bundle.intervals.score_bands`)."""

    key: tuple[Any, ...]
    forecasts: int
    coverage: float
    mean_width: float
    interval_score: float


def _grouped(
    settings: Settings,
    dataset: str,
    keys: list[Any],
    sums: list[Any],
    joined: Any,
    target_from: date,
    target_to: date,
    sources: Iterable[str] | None,
) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """``sums`` per group of ``keys`` over ``joined``'s scored forecasts of the target days from
    ``target_from`` to ``target_to`` (of ``sources``, default all), in the keys' order: each group's
    key and its sums, as the database computes them."""
    query = (
        select(*keys, *sums)
        .select_from(joined)
        .where(
            forecast_scores.c.dataset == dataset,
            forecast_scores.c.target_date >= target_from,
            forecast_scores.c.target_date <= target_to,
        )
    )
    if sources is not None:
        query = query.where(forecasts.c.source.in_(list(sources)))
    with engine(settings).connect() as connection:
        found = connection.execute(query.group_by(*keys).order_by(*keys)).all()
    return [(tuple(row[: len(keys)]), tuple(row[len(keys) :])) for row in found]


def accuracy(
    settings: Settings,
    dataset: str,
    by: list[str],
    target_from: date,
    target_to: date,
    sources: Iterable[str] | None = None,
) -> list[Accuracy]:
    """The scored forecasts of the target days from ``target_from`` to ``target_to`` (of ``sources``,
    default all), summed up per group of the :data:`ACCURACY_KEYS` ``by``, in their order: the sums
    are the database's, so a day of a hundred thousand series' forecasts never comes back row by row."""
    error, naive = func.abs(forecast_scores.c.error), func.abs(forecast_scores.c.naive_error)
    fair = forecast_scores.c.naive_error.is_not(None)
    sums = [func.count(), func.avg(error), func.count(forecast_scores.c.naive_error), func.avg(naive),
            func.avg(case((fair, error)))]  # fmt: skip
    joined = forecasts.join(forecast_scores, forecast_scores.c.forecast_id == forecasts.c.id)
    keys = [ACCURACY_KEYS[name] for name in by]
    return [
        Accuracy(
            key=key,
            forecasts=int(count),
            mae=float(mae),
            fair=int(fair_count),
            naive_mae=None if naive_mae is None else float(naive_mae),
            mae_on_naive_targets=None if on_fair is None else float(on_fair),
        )
        for key, (count, mae, fair_count, naive_mae, on_fair) in _grouped(
            settings, dataset, keys, sums, joined, target_from, target_to, sources
        )
    ]


def band_accuracy(
    settings: Settings,
    dataset: str,
    by: list[str],
    target_from: date,
    target_to: date,
    sources: Iterable[str] | None = None,
) -> list[BandAccuracy]:
    """The bands of the scored forecasts of the target days from ``target_from`` to ``target_to`` (of
    ``sources``, default all), summed up per group of the :data:`ACCURACY_KEYS` ``by`` and level, in
    their order; in the database, as :func:`accuracy`."""
    keys = [ACCURACY_KEYS[name] for name in by if name != "level"] + [forecast_intervals.c.level]
    lower, upper, actual = forecast_intervals.c.lower, forecast_intervals.c.upper, forecast_scores.c.actual
    inside = case((and_(lower <= actual, actual <= upper), 1.0), else_=0.0)
    miss = case((actual < lower, lower - actual), else_=0.0) + case((actual > upper, actual - upper), else_=0.0)
    joined = forecasts.join(forecast_scores, forecast_scores.c.forecast_id == forecasts.c.id).join(
        forecast_intervals, forecast_intervals.c.forecast_id == forecasts.c.id
    )
    sums = [func.count(), func.avg(inside), func.avg(upper - lower),
            func.avg(upper - lower + 2.0 / (1.0 - forecast_intervals.c.level) * miss)]  # fmt: skip
    return [
        BandAccuracy(
            key=key,
            forecasts=int(count),
            coverage=float(coverage),
            mean_width=float(width),
            interval_score=float(score),
        )
        for key, (count, coverage, width, score) in _grouped(
            settings, dataset, keys, sums, joined, target_from, target_to, sources
        )
    ]
