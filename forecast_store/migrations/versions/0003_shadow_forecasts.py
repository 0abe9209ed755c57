"""Shadow forecasts: versions that do not serve forecast the same day from the same features.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SHADOW_ONLY = sa.text("source = 'shadow'")


def upgrade() -> None:
    op.create_index(
        "uq_forecasts_shadow_day",
        "forecasts",
        ["dataset", "data_date", "entity_id", "step", "model_version"],
        unique=True,
        postgresql_where=SHADOW_ONLY,
        sqlite_where=SHADOW_ONLY,
    )


def downgrade() -> None:
    op.drop_index("uq_forecasts_shadow_day", table_name="forecasts")
