"""The customer list's search (``q``: part of a user id, email or name, any case) against a
Python filter over the same customers, for text of every length (SQLite looks up three
characters or more in its trigram index, kept by triggers; shorter text and PostgreSQL use a
LIKE), with LIKE's wildcards and FTS5's quote taken as plain text; and the index follows a
renamed customer and a deleted workspace -- on both databases."""

from __future__ import annotations

from sqlalchemy import delete, select, text

from clm.ingest import ingest
from clm.lifecycle.current_state import refresh_state
from clm.lifecycle.customer_list import CustomerQuery, list_customers
from clm.store.engine import Database
from clm.store.models import Customer, Workspace
from tests.conftest import make_tenant

PEOPLE = [
    ("u1", "ann.lee@example.com", "Ann Lee"),
    ("u12", "BOB@Shop.io", "Bob O'Neil"),
    ("u123", "cid_100%@example.com", 'Cid "Ace" Park'),
    ("U1234", "dora@mail.example.org", "Dora Lee-Smith"),
    ("x-99", None, "Émile Zola"),
    ("anon7", "e12@x.io", None),
]
QUERIES = ["u1", "U12", "example", "EXAMPLE.C", "lee", "ee", "e", "o'n", "100%", "%", "_",
           "cid_", '"ace"', "ace", "ple.org", "ann.lee@example.com", "1 ann", "zzz", "mile",
           "e12", "12", "   lee  "]  # fmt: skip


def _seed(db: Database, slug: str) -> tuple[int, dict[int, str]]:
    ws = make_tenant(db, slug).id
    messages = []
    for n, (user, email, name) in enumerate(PEOPLE):
        traits = {k: v for k, v in (("email", email), ("name", name)) if v is not None}
        messages.append({"type": "identify", "userId": user, "messageId": f"{slug}{n}",
                         "traits": traits, "timestamp": "2026-01-01T00:00:00Z"})  # fmt: skip
    ingest(db, ws, messages)
    refresh_state(db, ws)
    with db.session() as session:
        rows = session.execute(
            select(Customer.id, Customer.user_id, Customer.email, Customer.traits).where(
                Customer.workspace_id == ws
            )
        ).all()
    # The text a person could search, by customer: what the Python filter reads.
    return ws, {
        int(cid): " ".join([user or "", email or "", str((traits or {}).get("name") or "")])
        for cid, user, email, traits in rows
    }


def _expected(people: dict[int, str], query: str) -> list[int]:
    needle = query.strip().lower()
    return sorted(
        cid
        for cid, words in people.items()
        if needle in words.lower() or (needle.isdigit() and cid == int(needle))
    )


def _found(db: Database, ws: int, query: str) -> list[int]:
    page = list_customers(db, ws, CustomerQuery(q=query, per_page=100))
    assert page.total == len(page.items)
    return sorted(row.id for row in page.items)


def test_search_finds_what_a_python_filter_finds(db: Database) -> None:
    ws, people = _seed(db, "shop")
    _seed(db, "other")  # the same people in another workspace: never listed here
    assert len(people) == len(PEOPLE)
    for query in [*QUERIES, str(min(people))]:
        assert _found(db, ws, query) == _expected(people, query), query
    assert _found(db, ws, "lee") != []  # the filter finds something (not vacuous)


def test_the_index_follows_a_rename_and_a_deleted_workspace(db: Database) -> None:
    ws, people = _seed(db, "shop")
    [ann] = [cid for cid, words in people.items() if "Ann Lee" in words]
    renamed = {"type": "identify", "userId": "u1", "messageId": "rename",
               "traits": {"name": "Annabel Quist"}, "timestamp": "2026-02-01T00:00"}  # fmt: skip
    ingest(db, ws, [renamed])
    refresh_state(db, ws)
    assert _found(db, ws, "quist") == [ann]
    assert ann not in _found(db, ws, "ann lee")
    assert _found(db, ws, "ann.lee@") == [ann]  # the email stayed
    if db.dialect == "sqlite":  # the trigram index holds one row per customer, then none
        with db.session() as session:
            held = session.scalar(text("SELECT count(*) FROM customer_search"))
        assert held == len(people)
        with db.transaction() as session:
            session.execute(delete(Workspace).where(Workspace.id == ws))
        with db.session() as session:
            left = session.scalar(text("SELECT count(*) FROM customer_search"))
        assert left == 0
