"""health: each customer's current score and when it is next due

Revision ID: 0007
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "health_scores",
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("definition_id", BigId, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("scored_at", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("contributions", Json, nullable=False),
        sa.Column("next_due", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["definition_id"], ["lifecycle_definitions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("definition_id", "customer_id"),
    )
    op.create_index("ix_health_scores_due", "health_scores", ["definition_id", "next_due"])


def downgrade() -> None:
    op.drop_index("ix_health_scores_due", table_name="health_scores")
    op.drop_table("health_scores")
