"""events: the identity index widened to (identity_id, name, ts), so a customer's events of
one name in a time range (a playbook's goal within its window) are found in the index alone

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The new index leads with identity_id, so it serves every read the old one did.
    op.create_index("ix_events_identity_name_ts", "events", ["identity_id", "name", "ts"])
    op.drop_index("ix_events_identity_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_identity_id", "events", ["identity_id"])
    op.drop_index("ix_events_identity_name_ts", table_name="events")
