"""customer search: on SQLite, a trigram full-text index (FTS5) of the customer list's search
text, kept by triggers on customer_states, so a search finds its rows without scanning them

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# rowid = customer_states.customer_id. The row is written after the state row; a state row's
# update replaces it only when its search text (or id) changed, not on every refresh of a score.
TRIGGERS = {
    "customer_search_insert": """
        AFTER INSERT ON customer_states BEGIN
            INSERT INTO customer_search (rowid, search_text)
            VALUES (new.customer_id, new.search_text);
        END""",
    "customer_search_delete": """
        AFTER DELETE ON customer_states BEGIN
            DELETE FROM customer_search WHERE rowid = old.customer_id;
        END""",
    "customer_search_update": """
        AFTER UPDATE OF customer_id, search_text ON customer_states BEGIN
            DELETE FROM customer_search WHERE rowid = old.customer_id;
            INSERT INTO customer_search (rowid, search_text)
            VALUES (new.customer_id, new.search_text);
        END""",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL keeps the LIKE over ix_customer_states_search
    op.execute("CREATE VIRTUAL TABLE customer_search USING fts5(search_text, tokenize = 'trigram')")
    op.execute(
        "INSERT INTO customer_search (rowid, search_text)"
        " SELECT customer_id, search_text FROM customer_states"
    )
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DROP TABLE customer_search")
