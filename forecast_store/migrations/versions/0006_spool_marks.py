"""How far each of the service's spool segments has been written into the table.

The service keeps every forecast it answers in a local spool before the forecast table has it
(:mod:`forecast_store.spool`); its writer records the position it reached in a segment in the same
transaction as the rows, so a writer that dies between the two, or a segment drained again after a
crash, writes nothing twice.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_spool_marks",
        sa.Column("segment", sa.String(length=128), nullable=False, comment="the spool segment's file name"),
        sa.Column("position", sa.BigInteger(), nullable=False, comment="bytes of the segment written into the table"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_forecast_spool_marks")),
    )


def downgrade() -> None:
    op.drop_table("forecast_spool_marks")
