"""Scores of stored forecasts against the actuals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("forecast_id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False, comment="the UTC day of the forecast's target time"),
        sa.Column("actual", sa.Float(), nullable=False, comment="what really happened at the target time"),
        sa.Column("error", sa.Float(), nullable=False, comment="value - actual"),
        sa.Column("naive_value", sa.Float(), nullable=True, comment="seasonal naive's forecast of the same target"),
        sa.Column("naive_error", sa.Float(), nullable=True, comment="naive_value - actual"),
        sa.Column("actuals_date", sa.Date(), nullable=False, comment="the validated day the actual was read from"),
        sa.Column("dag_run_id", sa.String(length=250), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["forecast_id"],
            ["forecasts.id"],
            name=op.f("fk_forecast_scores_forecast_id_forecasts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_scores")),
        sa.UniqueConstraint("forecast_id", name=op.f("uq_forecast_scores_forecast_id")),
    )
    op.create_index("ix_forecast_scores_day", "forecast_scores", ["dataset", "target_date"])


def downgrade() -> None:
    op.drop_index("ix_forecast_scores_day", table_name="forecast_scores")
    op.drop_table("forecast_scores")
