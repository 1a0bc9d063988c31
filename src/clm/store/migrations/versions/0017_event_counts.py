"""event counts: a workspace's events per type and channel, for the head counts; and the
customer list's search text in each customer's state row

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_counts",
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("purchases", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.Column("first_ts", sa.BigInteger(), nullable=True),
        sa.Column("last_ts", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "type", "channel"),
    )
    with op.batch_alter_table("customer_states") as batch:
        batch.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    op.create_index(
        "ix_customer_states_search",
        "customer_states",
        ["workspace_id", "search_text", "customer_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_customer_states_search", table_name="customer_states")
    with op.batch_alter_table("customer_states") as batch:
        batch.drop_column("search_text")
    op.drop_table("event_counts")
