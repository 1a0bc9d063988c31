"""current state: one derived, indexed row per customer for lists and counts

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

INDEXES = {
    "ix_customer_states_id": ["workspace_id", "customer_id"],
    "ix_customer_states_stage": ["workspace_id", "stage", "customer_id"],
    "ix_customer_states_health_state": ["workspace_id", "health_state", "customer_id"],
    "ix_customer_states_health_score": ["workspace_id", "health_score", "customer_id"],
    "ix_customer_states_last_seen": ["workspace_id", "last_seen_ts", "customer_id"],
    "ix_customer_states_p_alive": ["workspace_id", "p_alive", "customer_id"],
    "ix_customer_states_clv": ["workspace_id", "clv_12m", "customer_id"],
    "ix_customer_states_rfm": ["workspace_id", "rfm_segment", "customer_id"],
    "ix_customer_states_revenue": ["workspace_id", "revenue", "customer_id"],
}


def upgrade() -> None:
    op.create_table(
        "customer_states",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("stage", sa.String(64), nullable=True),
        sa.Column("stage_since", sa.BigInteger(), nullable=True),
        sa.Column("stage_definition_id", sa.BigInteger(), nullable=True),
        sa.Column("health_state", sa.String(16), nullable=True),
        sa.Column("health_score", sa.Float(), nullable=True),
        sa.Column("health_definition_id", sa.BigInteger(), nullable=True),
        sa.Column("first_seen_ts", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_ts", sa.BigInteger(), nullable=True),
        sa.Column("purchases", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.Column("last_purchase_ts", sa.BigInteger(), nullable=True),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("clv_12m", sa.Float(), nullable=True),
        sa.Column("expected_purchases_90d", sa.Float(), nullable=True),
        sa.Column("prediction_fit_id", sa.String(64), nullable=True),
        sa.Column("rfm_segment", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "customer_states", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="customer_states")
    op.drop_table("customer_states")
