"""engage_journeys: each journey's goal outcome stored on its row (for which goal version,
when, by which event or stage entry), and engage_playbook_goals: how far each playbook's goal
has been observed, so the playbook report reads stored outcomes instead of probing the log

Backfill: none here. Journeys start unobserved (goal_version NULL); the engagement tick, or
the first report of a playbook, observes them (``clm.engage.playbooks.outcomes``).

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GOAL_INDEX = ["workspace_id", "playbook_name", "goal_version", "arm", "variant", "state", "goal_ts"]


def upgrade() -> None:
    with op.batch_alter_table("engage_journeys") as batch:
        batch.add_column(sa.Column("goal_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("goal_ts", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("goal_source_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_engage_journeys_goal", "engage_journeys", GOAL_INDEX)
    op.create_table(
        "engage_playbook_goals",
        sa.Column("id", BigId, nullable=False),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("playbook_name", sa.String(length=64), nullable=False),
        sa.Column("goal_key", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_cursor", sa.BigInteger(), nullable=False),
        sa.Column("transition_cursor", sa.BigInteger(), nullable=False),
        sa.Column("link_cursor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "playbook_name", name="uq_engage_playbook_goal"),
    )


def downgrade() -> None:
    op.drop_table("engage_playbook_goals")
    op.drop_index("ix_engage_journeys_goal", table_name="engage_journeys")
    with op.batch_alter_table("engage_journeys") as batch:
        batch.drop_column("goal_source_id")
        batch.drop_column("goal_ts")
        batch.drop_column("goal_version")
