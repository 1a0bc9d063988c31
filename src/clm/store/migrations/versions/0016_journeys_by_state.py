"""engage_journeys: an index by playbook and state, for journeys in flight

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_engage_journeys_playbook_state",
        "engage_journeys",
        ["workspace_id", "playbook_name", "state", "wake_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_engage_journeys_playbook_state", table_name="engage_journeys")
