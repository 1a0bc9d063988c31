"""engage_playbooks.source: each playbook version's YAML as its author saved it (comments and
layout kept), so the editor reopens the text that was saved rather than one rebuilt from the
stored definition

Backfill: none. Versions stored before this (and versions saved as JSON) have no text; their
YAML is rebuilt from the definition, as before (``clm.engage.playbooks.source``).

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("engage_playbooks") as batch:
        batch.add_column(sa.Column("source", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engage_playbooks") as batch:
        batch.drop_column("source")
