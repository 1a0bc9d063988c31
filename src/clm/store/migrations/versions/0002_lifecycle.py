"""lifecycle: stage model and scorecard versions, stage history, health history, runs

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _workspace() -> sa.Column[int]:
    return sa.Column("workspace_id", BigId, nullable=False)


def upgrade() -> None:
    op.create_table(
        "lifecycle_definitions",
        sa.Column("id", BigId, nullable=False),
        _workspace(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "kind", "name", "version", name="uq_lifecycle_def"),
    )
    op.create_table(
        "stage_transitions",
        sa.Column("id", BigId, nullable=False),
        _workspace(),
        sa.Column("definition_id", BigId, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_stage", sa.String(64), nullable=True),
        sa.Column("to_stage", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("cause_message_id", sa.String(255), nullable=True),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["definition_id"], ["lifecycle_definitions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_stage_transitions_customer",
        "stage_transitions",
        ["definition_id", "customer_id", "ts"],
    )
    op.create_index("ix_stage_transitions_ts", "stage_transitions", ["definition_id", "ts"])
    op.create_table(
        "health_history",
        sa.Column("id", BigId, nullable=False),
        _workspace(),
        sa.Column("definition_id", BigId, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("contributions", Json, nullable=False),
        sa.Column("cause_message_id", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["definition_id"], ["lifecycle_definitions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_health_history_customer", "health_history", ["definition_id", "customer_id", "ts"]
    )
    op.create_index("ix_health_history_ts", "health_history", ["definition_id", "ts"])
    op.create_table(
        "lifecycle_runs",
        sa.Column("id", BigId, nullable=False),
        _workspace(),
        sa.Column("definition_id", BigId, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["definition_id"], ["lifecycle_definitions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lifecycle_runs_definition_id", "lifecycle_runs", ["definition_id"])


def downgrade() -> None:
    op.drop_index("ix_lifecycle_runs_definition_id", table_name="lifecycle_runs")
    op.drop_table("lifecycle_runs")
    op.drop_index("ix_health_history_ts", table_name="health_history")
    op.drop_index("ix_health_history_customer", table_name="health_history")
    op.drop_table("health_history")
    op.drop_index("ix_stage_transitions_ts", table_name="stage_transitions")
    op.drop_index("ix_stage_transitions_customer", table_name="stage_transitions")
    op.drop_table("stage_transitions")
    op.drop_table("lifecycle_definitions")
