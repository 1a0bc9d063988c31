"""The column-wise transaction import resolves people as the HTTP API does, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from sqlalchemy import text

from clm.ingest import ingest
from clm.ingest.importer import import_transactions
from clm.ingest.service import known_identities
from clm.store import customers as repo
from clm.store.engine import Database
from tests.conftest import Tenant


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
