"""Online forecasts are stored once, with the number of times they were answered.

A forecast is a function of its entity, the features' event time and the model version: the service
answering the same one again issues nothing new. Before, every answer was a row of its own (at 200
requests a second on one entity, 4,800 identical rows a second); now the service's ledger adds to
the ``answers`` of the row it already wrote. Rows already stored twice are collapsed into the first,
which keeps the sum of their answers (and its score; the copies' scores go with them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ONLINE_ONLY = sa.text("source = 'online'")
KEY = ("dataset", "entity_id", "issue_time", "step", "model_name", "model_version")
# Each key's first row and its number of rows, in one pass (UPDATE ... FROM: PostgreSQL, SQLite 3.33+).
FIRSTS = f"SELECT MIN(id) AS id, COUNT(*) AS n FROM forecasts WHERE source = 'online' GROUP BY {', '.join(KEY)}"


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: SQLite's batch mode would recreate the table, and with
    # foreign keys on, dropping the old one would take every score with it.
    op.add_column(
        "forecasts",
        sa.Column(
            "answers",
            sa.Integer(),
            nullable=False,
            server_default="1",
            comment="how many times the service answered it (online); 1 otherwise",
        ),
    )
    op.execute(
        f"UPDATE forecasts SET answers = firsts.n FROM ({FIRSTS}) AS firsts "
        "WHERE forecasts.id = firsts.id AND firsts.n > 1"
    )
    op.execute(
        "DELETE FROM forecasts WHERE source = 'online' AND id NOT IN "
        f"(SELECT MIN(id) FROM forecasts WHERE source = 'online' GROUP BY {', '.join(KEY)})"
    )
    op.create_index(
        "uq_forecasts_online_answer",
        "forecasts",
        list(KEY),
        unique=True,
        postgresql_where=ONLINE_ONLY,
        sqlite_where=ONLINE_ONLY,
    )


def downgrade() -> None:
    op.drop_index("uq_forecasts_online_answer", table_name="forecasts")
    op.drop_column("forecasts", "answers")
