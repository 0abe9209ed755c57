"""Prediction intervals of stored forecasts: one row per forecast and level.

A forecast's step carries a band per level of the model version that issued it (80 % and 95 % by
default); versions registered before bundles carried intervals have none. The bands go with their
forecast when a day is replaced.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_intervals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("forecast_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Float(), nullable=False, comment="nominal coverage, e.g. 0.8"),
        sa.Column("lower", sa.Float(), nullable=False),
        sa.Column("upper", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["forecast_id"],
            ["forecasts.id"],
            name=op.f("fk_forecast_intervals_forecast_id_forecasts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_intervals")),
        sa.UniqueConstraint("forecast_id", "level", name=op.f("uq_forecast_intervals_forecast_id_level")),
    )


def downgrade() -> None:
    op.drop_table("forecast_intervals")
