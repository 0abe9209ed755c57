"""The forecast table's schema: what the migrations create and the store reads and writes."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

# Named constraints from the first migration on: SQLite can only change a table by recreating it
# (Alembic's batch mode), and an unnamed constraint cannot be dropped there.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

BATCH = "batch"  # issued by the daily batch forecast, one per entity, step and day
ONLINE = "online"  # answered by the service
SHADOW = "shadow"  # issued with the batch, by a version that does not serve (previous champion, challenger)
DAILY_SOURCES = (BATCH, SHADOW)  # what a day's batch forecast writes, and a re-run of it replaces
# What identifies an online forecast: the same entity, features and version give the same answer.
ONLINE_KEY = ("dataset", "entity_id", "issue_time", "step", "model_name", "model_version")

forecasts = Table(
    "forecasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("entity_id", String(256), nullable=False),
    Column("source", String(16), nullable=False, comment="batch | online | shadow"),
    Column("data_date", Date, nullable=False, comment="the day whose data the forecast was issued from"),
    Column("issue_time", DateTime(timezone=True), nullable=False, comment="event time of the features used (UTC)"),
    Column("step", Integer, nullable=False, comment="1..H"),
    Column("target_time", DateTime(timezone=True), nullable=False, comment="issue_time + step periods (UTC)"),
    Column("value", Float, nullable=False),
    Column("model_name", String(128), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("dag_run_id", String(250), nullable=True, comment="the DAG run that issued it (batch)"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column(
        "answers",
        Integer,
        nullable=False,
        server_default="1",
        comment="how many times the service answered it (online); 1 otherwise",
    ),
    # One batch forecast per entity, step and day: re-running a day replaces its rows.
    Index(
        "uq_forecasts_batch_day",
        "dataset",
        "data_date",
        "entity_id",
        "step",
        unique=True,
        postgresql_where=text("source = 'batch'"),
        sqlite_where=text("source = 'batch'"),
    ),
    # One shadow forecast per version, entity, step and day.
    Index(
        "uq_forecasts_shadow_day",
        "dataset",
        "data_date",
        "entity_id",
        "step",
        "model_version",
        unique=True,
        postgresql_where=text("source = 'shadow'"),
        sqlite_where=text("source = 'shadow'"),
    ),
    # One online forecast per entity, features' event time, step and version: answering it again adds
    # to its ``answers`` (the service's ledger upserts), it is issued once and scored once.
    Index(
        "uq_forecasts_online_answer",
        *ONLINE_KEY,
        unique=True,
        postgresql_where=text("source = 'online'"),
        sqlite_where=text("source = 'online'"),
    ),
    Index("ix_forecasts_lookup", "dataset", "entity_id", "issue_time"),
    Index("ix_forecasts_target", "dataset", "target_time"),
)

forecast_scores = Table(
    "forecast_scores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # A forecast is scored once: a re-run of the scoring replaces its score, never adds one.
    Column("forecast_id", Integer, ForeignKey("forecasts.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("dataset", String(64), nullable=False),
    Column("target_date", Date, nullable=False, comment="the UTC day of the forecast's target time"),
    Column("actual", Float, nullable=False, comment="what really happened at the target time"),
    Column("error", Float, nullable=False, comment="value - actual"),
    Column("naive_value", Float, nullable=True, comment="seasonal naive's forecast of the same target"),
    Column("naive_error", Float, nullable=True, comment="naive_value - actual"),
    Column("actuals_date", Date, nullable=False, comment="the validated day the actual was read from"),
    Column("dag_run_id", String(250), nullable=True),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    Index("ix_forecast_scores_day", "dataset", "target_date"),
)

forecast_intervals = Table(
    "forecast_intervals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # A replaced forecast takes its bands along.
    Column("forecast_id", Integer, ForeignKey("forecasts.id", ondelete="CASCADE"), nullable=False),
    Column("level", Float, nullable=False, comment="nominal coverage, e.g. 0.8"),
    Column("lower", Float, nullable=False),
    Column("upper", Float, nullable=False),
    UniqueConstraint("forecast_id", "level"),
)

forecast_spool_marks = Table(
    "forecast_spool_marks",
    metadata,
    # How far each of the service's spool segments has been written into this table, set in the same
    # transaction as the rows it wrote: a writer that dies between the two writes nothing twice.
    Column("segment", String(128), primary_key=True, comment="the spool segment's file name"),
    Column("position", BigInteger, nullable=False, comment="bytes of the segment written into the table"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
