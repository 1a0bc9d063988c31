"""predictions: one row per model fit (parameters, standard errors, diagnostics)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "prediction_fits",
        sa.Column("id", BigId, nullable=False),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("fit_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("standard_errors", Json, nullable=False),
        sa.Column("log_likelihood", sa.Float(), nullable=False),
        sa.Column("n_customers", sa.Integer(), nullable=False),
        sa.Column("calibration_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holdout", Json, nullable=True),
        sa.Column("diagnostics", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "fit_id", name="uq_prediction_fit"),
    )
    op.create_index(
        "ix_prediction_fits_workspace_created", "prediction_fits", ["workspace_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_prediction_fits_workspace_created", table_name="prediction_fits")
    op.drop_table("prediction_fits")
