"""The forecast table's fixtures: a fresh table on each database it runs on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.settings import Settings
from forecast_store import store


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings whose forecast table is a fresh SQLite file, or a fresh database of the test PostgreSQL."""
    if request.param == "sqlite":
        yield Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
        return
    server = request.getfixturevalue("postgres_url").rsplit("/", 1)[0]
    name = f"forecasts_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    on_postgres = Settings(home=tmp_path / "home", forecast_db=f"{server}/{name}", _env_file=None)  # type: ignore[call-arg]
    yield on_postgres
    store.engine(on_postgres).dispose()
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()
