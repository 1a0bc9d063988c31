"""events: partial indexes for survey answers and referral link clicks

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The same as clm.store.models.EVENT_KIND_INDEXES (a migration never imports the models).
INDEXES = {
    "ix_events_survey_answers": "name = 'survey_answered'",
    "ix_events_referral_clicks": "name = 'Referral Link Clicked'",
}


def upgrade() -> None:
    for name, where in INDEXES.items():
        op.create_index(
            name,
            "events",
            ["workspace_id", "ts"],
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="events")
