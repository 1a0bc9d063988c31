"""The column-wise transaction import resolves people as the HTTP API does, on both engines."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import event, text

from clm.ingest import ingest, transactions
from clm.ingest.importer import import_transactions
from clm.ingest.service import known_identities
from clm.store import customers as repo
from clm.store.bulk import insert_event_frame
from clm.store.engine import Database
from clm.store.models import Customer, Event
from tests.conftest import Tenant, make_tenant


def test_known_customers_keep_their_identity_and_new_ones_are_explained(
    db: Database, tenant: Tenant
) -> None:
    # "ann" already exists through the API, with an anonymous visit merged in.
    ingest(db, tenant.id, [
        {"type": "page", "anonymousId": "v1", "messageId": "p1",
         "timestamp": "2024-01-01T09:00:00Z"},
        {"type": "identify", "anonymousId": "v1", "userId": "ann", "messageId": "i1",
         "timestamp": "2024-01-01T09:05:00Z", "traits": {"email": "ann@x.test"}},
    ])  # fmt: skip
    with db.session() as session:
        ann_before = repo.find_customer(session, tenant.id, "user_id", "ann")
    log = pl.DataFrame({
        "customer_id": ["bob", "ann", "bob", "cy"],
        "date": ["2024-03-02", "2024-03-01", "2024-02-10", "2024-03-05"],
        "amount": [5.0, 12.5, 7.25, 1.0],
    })  # fmt: skip
    report = import_transactions(db, tenant.id, log)
    assert (report.stored, report.duplicates, report.rejected) == (4, 0, [])
    with db.session() as session:
        ann = repo.find_customer(session, tenant.id, "user_id", "ann")
        bob = repo.find_customer(session, tenant.id, "user_id", "bob")
        bob_events = repo.timeline(session, tenant.id, bob.id)
    # Ann's purchase joined her existing customer: no new person, no new identity or link.
    assert ann.id == ann_before.id
    assert ann.event_count == 3
    assert [i.kind for i in ann.identities] == [i.kind for i in ann_before.identities]
    assert len(ann.resolution) == len(ann_before.resolution)
    # Bob is new: one user id identity, first seen at his earliest purchase, and one link.
    assert [(i.kind, i.value) for i in bob.identities] == [("user_id", "bob")]
    assert bob.identities[0].first_seen_at == datetime(2024, 2, 10, tzinfo=UTC)
    assert [(r.kind, r.value, r.outcome, r.reason, r.occurred_at) for r in bob.resolution] == [
        ("user_id", "bob", "new", "event", datetime(2024, 2, 10, tzinfo=UTC))
    ]
    assert sorted(e.revenue for e in bob_events) == [5.0, 7.25]
    assert {e.name for e in bob_events} == {"Order Completed"}
    # The API's fast path now knows bob without a lookup.
    with db.session() as session:
        bob_identity = session.execute(
            text("SELECT id FROM identities WHERE workspace_id = :ws AND value = 'bob'"),
            {"ws": tenant.id},
        ).scalar_one()
    assert known_identities(db).identity_for(tenant.id, [("user_id", "bob")]) == bob_identity


def test_order_ids_currency_and_quoted_names(db: Database, tenant: Tenant) -> None:
    log = pl.DataFrame({
        "who": ["a", "a", "b"],
        "day": ["2024-05-01", "2024-05-01", "2024-05-02"],
        "paid": [10.0, 10.0, 3.5],
        "qty": [2, 2, None],
        "order": ["o-1", "o-1", "o-2"],  # o-1 twice: one order, stored once
    })  # fmt: skip
    options = {
        "customer": "who", "date": "day", "amount": "paid", "quantity": "qty",
        "order_id": "order", "currency": "EUR", "event": "Bob's \"Big\" Order",
    }  # fmt: skip
    report = import_transactions(db, tenant.id, log, **options)
    assert (report.stored, report.duplicates) == (2, 1)
    with db.session() as session:
        a = repo.find_customer(session, tenant.id, "user_id", "a")
        (event,) = repo.timeline(session, tenant.id, a.id)
    assert event.message_id == "txn:order:o-1"
    assert event.name == 'Bob\'s "Big" Order'
    assert event.currency == "EUR"
    assert event.properties == {"revenue": 10.0, "quantity": 2.0, "currency": "EUR"}
    assert event.context == {"library": {"name": "clm-import"}}
    again = import_transactions(db, tenant.id, log, **options)
    assert (again.stored, again.duplicates) == (0, 3)


def test_people_rows_of_new_customers(db: Database, tenant: Tenant) -> None:
    # SQLite writes them from a temporary table, PostgreSQL by COPY: the same rows either way.
    log = pl.DataFrame({"customer_id": ["dee", "eve"], "date": ["2024-04-02", "2024-04-01"],
                        "amount": [3.0, 4.0]})  # fmt: skip
    before = datetime.now(UTC)
    import_transactions(db, tenant.id, log)
    with db.session() as session:
        dee = repo.find_customer(session, tenant.id, "user_id", "dee")
        eve = repo.find_customer(session, tenant.id, "user_id", "eve")
        links = session.execute(
            text(
                "SELECT customer_id, other_customer_id, kind, value, outcome, reason, message_id "
                "FROM identity_links WHERE workspace_id = :ws ORDER BY id"
            ),
            {"ws": tenant.id},
        ).all()
        stored = session.get(Customer, dee.id)
    # Ids follow first purchase: eve (April 1st) before dee.
    assert eve.id < dee.id
    assert stored is not None
    assert (stored.user_id, stored.email, stored.traits, stored.merged_into_id) == (
        "dee", None, {}, None
    )  # fmt: skip
    assert before <= stored.created_at <= datetime.now(UTC)
    assert [(i.kind, i.value, i.first_seen_at) for i in dee.identities] == [
        ("user_id", "dee", datetime(2024, 4, 2, tzinfo=UTC))
    ]
    assert [tuple(link) for link in links] == [
        (eve.id, None, "user_id", "eve", "new", "event", ""),
        (dee.id, None, "user_id", "dee", "new", "event", ""),
    ]


def _statements(db: Database) -> list[str]:
    """Every statement SQLite runs on the engine's connections from now on."""
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(db.engine, "checkout", trace)
    return seen


def _event_indexes(db: Database) -> list[str]:
    with db.session() as session:
        return list(
            session.execute(
                text("SELECT name FROM pragma_index_list('events') ORDER BY name")
            ).scalars()
        )


# Every index the schema declares on events (the partial ones for survey answers and referral
# clicks included, which a large import keeps), and SQLite's own for the unique message id.
_INDEXES = sorted([*(i.name for i in Event.__table__.indexes), "sqlite_autoindex_events_1"])
_LOG = pl.DataFrame({
    "customer_id": ["a", "b", "a", "c", "zed"],
    "date": ["2024-01-03", "2024-01-01", "2024-01-02", "2024-01-05", "2024-01-04"],
    "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
})  # fmt: skip


def test_large_sqlite_import_builds_its_indexes_after_the_load(sqlite_db: Database) -> None:
    tenant = make_tenant(sqlite_db)
    statements = _statements(sqlite_db)
    # Several chunks, at least as many rows as the table holds: one transaction that drops
    # the two non-unique indexes, loads and creates them again.
    report = import_transactions(sqlite_db, tenant.id, _LOG, chunk_size=2)
    assert (report.stored, report.duplicates) == (5, 0)
    assert any(s.startswith("DROP INDEX") for s in statements)
    assert _event_indexes(sqlite_db) == _INDEXES
    with sqlite_db.session() as session:
        assert session.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        by_time = session.execute(
            text("SELECT user_id FROM events INDEXED BY ix_events_workspace_ts "
                 "WHERE workspace_id = :ws AND ts >= 0 ORDER BY ts"), {"ws": tenant.id}
        ).scalars().all()  # fmt: skip
        zed = repo.find_customer(session, tenant.id, "user_id", "zed")
        zed_events = repo.timeline(session, tenant.id, zed.id)
    assert by_time == ["b", "a", "a", "zed", "c"]
    assert [e.revenue for e in zed_events] == [5.0]
    # The same file again stores nothing (its ids are stored: no rebuild); a small import
    # (one chunk) keeps the indexes and inserts through them, and so does one smaller than
    # the table.
    statements.clear()
    again = import_transactions(sqlite_db, tenant.id, _LOG, chunk_size=2)
    small = import_transactions(sqlite_db, tenant.id, _LOG.with_columns(amount=pl.lit(9.0)))
    smaller = import_transactions(
        sqlite_db, tenant.id, _LOG.head(4).with_columns(amount=pl.lit(8.0)), chunk_size=2
    )
    assert (again.stored, again.duplicates, small.stored, smaller.stored) == (0, 5, 5, 4)
    assert not any(s.startswith("DROP INDEX") for s in statements)
    assert _event_indexes(sqlite_db) == _INDEXES


def test_failed_large_sqlite_import_keeps_the_indexes(sqlite_db: Database) -> None:
    tenant = make_tenant(sqlite_db)
    with sqlite_db.transaction() as session:  # fails the last chunk (message ids sort "zed" last)
        session.execute(text(
            "CREATE TRIGGER refuse_zed BEFORE INSERT ON events WHEN NEW.user_id = 'zed' "
            "BEGIN SELECT RAISE(ABORT, 'zed refused'); END"
        ))  # fmt: skip
    with pytest.raises(sqlite3.IntegrityError, match="zed refused"):
        import_transactions(sqlite_db, tenant.id, _LOG, chunk_size=2)
    # The whole load was one transaction: no event of it is stored, the indexes are back.
    assert _event_indexes(sqlite_db) == _INDEXES
    with sqlite_db.session() as session:
        assert session.execute(text("SELECT count(*) FROM events")).scalar_one() == 0
    with sqlite_db.transaction() as session:
        session.execute(text("DROP TRIGGER refuse_zed"))
    report = import_transactions(sqlite_db, tenant.id, _LOG, chunk_size=2)
    assert report.stored == 5
    assert _event_indexes(sqlite_db) == _INDEXES


def _sql_seen(db: Database) -> list[str]:
    """Every statement SQLAlchemy sends from now on (COPY, sent by the driver, is not)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    return seen


def test_postgres_new_chunks_copy_straight_into_events(db: Database, tenant: Tenant) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's COPY path")
    seen = _sql_seen(db)
    report = import_transactions(db, tenant.id, _LOG, chunk_size=2)
    assert (report.stored, report.duplicates) == (5, 0)
    assert not any("events_incoming" in s for s in seen)  # no staging table
    # Stored ids in the range: staged, and the duplicates skipped.
    again = import_transactions(db, tenant.id, _LOG, chunk_size=2)
    assert (again.stored, again.duplicates) == (0, 5)
    assert any("events_incoming" in s for s in seen)
    with db.session() as session:
        assert session.execute(text("SELECT count(*) FROM events")).scalar_one() == 5


def test_postgres_copy_refused_by_the_unique_index_falls_back(db: Database, tenant: Tenant) -> None:
    # A frame repeating a message id passes the range probe (nothing stored), so the direct
    # COPY is tried; the unique index refuses it and the staged insert skips the repeat.
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's COPY path")
    import_transactions(db, tenant.id, _LOG.head(1))  # customer "a" and its identity
    with db.session() as session:
        identity = session.execute(
            text("SELECT id FROM identities WHERE workspace_id = :ws"), {"ws": tenant.id}
        ).scalar_one()
    frame = pl.DataFrame({
        "identity_id": [identity] * 3,
        "message_id": ["m-1", "m-2", "m-1"],
        "user_id": ["a"] * 3,
        "timestamp": ["2024-01-01 00:00:00.000000+00"] * 3,
        "ts": [1_704_067_200] * 3,
        "original_timestamp": [None] * 3,
        "revenue": [1.0, 2.0, 3.0],
        "properties": ['{"n": 1}', '{"n": 2}', '{"n": 3}'],
    })  # fmt: skip
    constants = transactions._constants(
        "postgresql", tenant.id, "Order Completed", None, datetime.now(UTC)
    )
    seen = _sql_seen(db)
    with db.transaction() as session:
        stored = insert_event_frame(session.connection(), frame, constants)
    assert stored == 2
    assert any("events_incoming" in s for s in seen)
    with db.session() as session:
        rows = session.execute(
            text("SELECT message_id, revenue FROM events WHERE message_id LIKE 'm-%' "
                 "ORDER BY message_id")
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [("m-1", 1.0), ("m-2", 2.0)]


def test_infinite_amounts_are_refused_row_by_row(db: Database, tmp_path: Path) -> None:
    """``inf`` and ``1e400`` (a double overflows to inf) used to be stored as purchases and
    made the workspace's revenue non-finite (issue 16, item 2)."""
    tenant = make_tenant(db, "money")
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer,date,amount\n"
        "a,2026-01-01,10.5\n"
        "b,2026-01-02,inf\n"
        "c,2026-01-03,1e400\n"
        "d,2026-01-04,-inf\n"
        "e,2026-01-05,-3\n"
    )
    report = import_transactions(db, tenant.id, path, customer="customer", date="date",
                                 amount="amount")  # fmt: skip
    assert report.stored == 1
    reasons = sorted((r.line, r.errors[0]["message"]) for r in report.rejected)
    assert reasons == [
        (3, "amount: not a finite number"),
        (4, "amount: not a finite number"),
        (5, "amount: not a finite number"),
        (6, "amount: negative; import refunds as their own events"),
    ]
