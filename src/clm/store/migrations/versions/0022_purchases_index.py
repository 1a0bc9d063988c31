"""purchases index: the customer list sorts by purchases (and filters a range of them) on an
index, as it does by every other column it sorts by

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_customer_states_purchases",
        "customer_states",
        ["workspace_id", "purchases", "customer_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_customer_states_purchases", table_name="customer_states")
