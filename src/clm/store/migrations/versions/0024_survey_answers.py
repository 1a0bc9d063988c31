"""survey answers: each survey response's latest answer, stored, so a survey's results and
comments are indexed reads; a partial index of survey answers by event id, for the catch-up
past a cursor; and the survey links by survey, for the results' "asked" count

The table starts empty: the first read of a survey's results, or the first engagement tick,
fills it from the log (``clm.engage.surveys.stored_answers``), with the same code that keeps
it up to date afterwards, rather than a second copy of that code frozen in this migration.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SURVEY_ANSWERS = "name = 'survey_answered'"  # as clm.store.models.SURVEY_ANSWERS


def upgrade() -> None:
    op.create_table(
        "survey_answers",
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("survey_key", sa.String(64), nullable=False),
        sa.Column("response_key", sa.String(255), nullable=False),
        sa.Column("identity_id", BigId, nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("score_ts", sa.BigInteger(), nullable=True),
        sa.Column("score_revision", sa.Integer(), nullable=True),
        sa.Column("score_message_id", sa.String(255), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("sentiment", sa.Float(), nullable=True),
        sa.Column("comment_ts", sa.BigInteger(), nullable=True),
        sa.Column("comment_revision", sa.Integer(), nullable=True),
        sa.Column("comment_message_id", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "survey_key", "response_key"),
    )
    op.create_index(
        "ix_survey_answers_scores",
        "survey_answers",
        ["workspace_id", "survey_key", "score_ts", "score"],
    )
    op.create_index(
        "ix_survey_answers_comments", "survey_answers", ["workspace_id", "survey_key", "comment_ts"]
    )
    op.create_index("ix_survey_answers_identity", "survey_answers", ["identity_id"])
    op.create_index(
        "ix_engage_tokens_survey", "engage_tokens", ["workspace_id", "purpose", "subject"]
    )
    op.create_index(
        "ix_events_survey_answer_ids",
        "events",
        ["workspace_id", "id"],
        sqlite_where=sa.text(SURVEY_ANSWERS),
        postgresql_where=sa.text(SURVEY_ANSWERS),
    )


def downgrade() -> None:
    op.drop_index("ix_events_survey_answer_ids", table_name="events")
    op.drop_index("ix_engage_tokens_survey", table_name="engage_tokens")
    op.drop_table("survey_answers")
