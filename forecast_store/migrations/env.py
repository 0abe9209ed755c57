"""Alembic's environment for the forecast table: migrations run on the connection the store hands
over (``config.attributes["connection"]``), or on ``sqlalchemy.url`` from the command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from forecast_store.schema import metadata


def run_migrations(connection: Connection) -> None:
    # Batch mode: SQLite changes a table by copying it; PostgreSQL alters it in place.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as opened:
        run_migrations(opened)
