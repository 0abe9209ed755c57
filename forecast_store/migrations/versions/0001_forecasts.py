"""The forecast table.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False, comment="batch | online"),
        sa.Column("data_date", sa.Date(), nullable=False, comment="the day whose data the forecast was issued from"),
        sa.Column(
            "issue_time", sa.DateTime(timezone=True), nullable=False, comment="event time of the features used (UTC)"
        ),
        sa.Column("step", sa.Integer(), nullable=False, comment="1..H"),
        sa.Column("target_time", sa.DateTime(timezone=True), nullable=False, comment="issue_time + step periods (UTC)"),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("dag_run_id", sa.String(length=250), nullable=True, comment="the DAG run that issued it (batch)"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecasts")),
    )
    op.create_index(
        "uq_forecasts_batch_day",
        "forecasts",
        ["dataset", "data_date", "entity_id", "step"],
        unique=True,
        postgresql_where=sa.text("source = 'batch'"),
        sqlite_where=sa.text("source = 'batch'"),
    )
    op.create_index("ix_forecasts_lookup", "forecasts", ["dataset", "entity_id", "issue_time"])
    op.create_index("ix_forecasts_target", "forecasts", ["dataset", "target_time"])


def downgrade() -> None:
    op.drop_index("ix_forecasts_target", table_name="forecasts")
    op.drop_index("ix_forecasts_lookup", table_name="forecasts")
    op.drop_index("uq_forecasts_batch_day", table_name="forecasts")
    op.drop_table("forecasts")
