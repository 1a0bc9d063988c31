"""Erasure: afterwards no row in any table names the person (every column, JSON included,
the outbox's rendered messages too), reports no longer count them, and events re-sent with
their identifiers are refused by the tombstone rule. On SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from clm.accounts import Actor
from clm.analytics import run_report
from clm.errors import NotFound
from clm.ingest import ingest
from clm.privacy import erase_customer, export_customer
from clm.store.engine import Database
from clm.store.models import AuditRecord, Customer, Event, Tombstone
from tests.privacy.scenario import ADA_STRINGS, World, build

ID_COLUMNS = {"customer_id", "referrer_id", "referee_id", "other_customer_id", "merged_into_id"}
TEST = Actor("test:privacy")
WINDOW = {"since": "2024-03-01T00:00:00Z", "until": "2024-04-01T00:00:00Z"}


def _json_ids(value: Any) -> Iterator[Any]:
    """Every value under a customer-id-like key, at any depth of a JSON document."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ID_COLUMNS:
                yield inner
            yield from _json_ids(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _json_ids(inner)


def traces(db: Database, world: World) -> list[str]:
    """Where the database still names Ada: every table the database has (reflected, so a
    table added by anyone is walked too), every column, JSON documents parsed."""
    metadata = MetaData()
    metadata.reflect(bind=db.engine)
    ada_ids = set(world.ada_ids)
    found = []
    with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    if isinstance(value, str) and value[:1] in "{[":
                        with contextlib.suppress(ValueError):
                            value = json.loads(value)  # SQLite keeps JSON as text
                    text = json.dumps(value, default=str) if not isinstance(value, str) else value
                    where = f"{table.name}.{column}"
                    found += [f"{where}: {s}" for s in ADA_STRINGS if s.lower() in text.lower()]
                    if column in ID_COLUMNS and value in ada_ids:
                        found.append(f"{where} = {value}")
                    if table.name == "customers" and column == "id" and value in ada_ids:
                        found.append(f"customers.id = {value}")
                    if column == "account" and value in {f"customer:{i}" for i in ada_ids}:
                        found.append(f"{where} = {value}")
                    if isinstance(value, dict | list):
                        found += [f"{where} JSON id {v}" for v in _json_ids(value) if v in ada_ids]
    return found


def _report_numbers(db: Database, ws: int) -> tuple[int, float, int, int]:
    """(new customers, revenue) of March, customers entering the funnel, customers in RFM."""
    retention = run_report(db, ws, "churn_retention", WINDOW).model_dump()
    [march] = retention["periods"]
    funnel = run_report(db, ws, "funnel", WINDOW).model_dump()
    rfm = run_report(db, ws, "rfm", WINDOW).model_dump()
    return (
        march["new"],
        march["revenue"],
        funnel["steps"][0]["entered"],
        sum(s["customers"] for s in rfm["segments"]),
    )


def test_after_erasure_nothing_names_the_person(db: Database) -> None:
    world = build(db)
    before = traces(db, world)
    # The walk can see her: in the log, identities, outbox, ledger, JSON properties, ...
    seen = {trace.split(".", 1)[0] for trace in before}
    for table in (
        "events",
        "identities",
        "identity_links",
        "customers",
        "engage_messages",
        "engage_ledger",
        "engage_suppressions",
        "engage_referrals",
        "stage_transitions",
        "health_history",
        "privacy_consent_history",
        "engage_journey_log",
        "engage_coupon_redemptions",
        "engage_testimonials",
        "engage_tasks",
        "survey_answers",
    ):
        assert table in seen, table
    # By hand: March has Ada (200) and Bob (50) as new customers, both enter the funnel.
    assert _report_numbers(db, world.workspace_id) == (2, 250.0, 2, 2)

    report = erase_customer(db, world.workspace_id, world.ada_ids[1], who=TEST)  # merged id

    assert report.customer_id == world.ada
    assert traces(db, world) == []
    # Audited, with ids and counts only (the walk above covered the audit log too).
    with db.session() as session:
        audit = session.execute(select(AuditRecord.actor, AuditRecord.action, AuditRecord.target,
                                       AuditRecord.after)).all()  # fmt: skip
    [(actor, action, target, after)] = audit
    assert (actor, action, target) == ("test:privacy", "customer.erase", f"customer:{world.ada}")
    assert after["deleted"]["customers"] == 2 and after["tombstones"] == 4
    assert report.deleted["events"] >= 6
    assert report.tombstones == 4  # her user id, two anonymous ids, her email
    # Bob is untouched: his events, his order, his points.
    with db.session() as session:
        bob_orders = session.scalars(
            select(Event.properties).where(Event.name == "Order Completed")
        ).all()
    assert [p["order_id"] for p in bob_orders] == ["bob-order-1"]
    # Reports computed afterwards count only Bob.
    assert _report_numbers(db, world.workspace_id) == (1, 50.0, 1, 1)
    with db.session() as session, pytest.raises(NotFound):
        from clm.store.customers import get_customer

        get_customer(session, world.workspace_id, world.ada)


def test_events_resent_with_erased_identifiers_are_refused(db: Database) -> None:
    world = build(db)
    erase_customer(db, world.workspace_id, world.ada, who=TEST)
    ws = world.workspace_id
    resent = [
        {
            "type": "track",
            "userId": "ada-1001",
            "event": "Order Completed",
            "messageId": "r1",
            "properties": {"revenue": 10},
        },
        {"type": "page", "anonymousId": "anon-ada-7f3", "messageId": "r2"},
        {
            "type": "identify",
            "anonymousId": "fresh-device",
            "messageId": "r3",
            "traits": {"email": "ada.lovelace@example.org"},
        },
        {
            "type": "alias",
            "userId": "someone-new",
            "previousId": "anon-ada-phone",
            "messageId": "r4",
        },
        # An unrelated newcomer in the same batch is stored as usual.
        {"type": "track", "userId": "carol-3003", "event": "Signed Up", "messageId": "r5"},
    ]
    result = ingest(db, ws, resent)
    assert (result.stored, result.duplicates, result.rejected) == (1, 4, [])
    with db.session() as session:
        users = set(session.scalars(select(Customer.user_id).where(Customer.workspace_id == ws)))
    assert users == {"bob-2002", "carol-3003"}
    assert traces(db, world) == []
    # The same identifier in another workspace is not refused: tombstones are per workspace.
    from tests.conftest import make_tenant

    other = make_tenant(db, "other")
    assert ingest(db, other.id, resent[:1]).stored == 1


def test_tombstones_are_keyed_hashes_not_the_identifiers(db: Database) -> None:
    import hashlib
    import hmac

    world = build(db)
    erase_customer(db, world.workspace_id, world.ada, who=TEST)
    with db.session() as session:
        digests = set(session.scalars(select(Tombstone.digest)))
    # Not a plain hash of any identifier (a dictionary attack would reverse those)...
    plain = {hashlib.sha256(s.encode()).hexdigest() for s in ADA_STRINGS}
    assert not digests & plain
    # ...but the HMAC, under a key derived from the server secret, of workspace, kind and value.
    secret = b"test-secret-key-0123456789abcdef"
    key = hmac.new(secret, b"clm-tombstone-v1", hashlib.sha256).digest()
    expected = {
        hmac.new(
            key, f"{world.workspace_id}\x1f{kind}\x1f{value}".encode(), hashlib.sha256
        ).hexdigest()
        for kind, value in [
            ("user_id", "ada-1001"),
            ("anonymous_id", "anon-ada-7f3"),
            ("anonymous_id", "anon-ada-phone"),
            ("email", "ada.lovelace@example.org"),
        ]
    }
    assert digests == expected


def test_export_holds_everything_and_erasure_removes_exactly_that(db: Database) -> None:
    world = build(db)
    document = export_customer(db, world.workspace_id, world.ada, who=TEST)
    tables = document["tables"]
    assert document["customer_id"] == world.ada
    assert document["merged_customer_ids"] == [world.ada_ids[1]]
    assert sorted(i["value"] for i in tables["identities"]) == sorted(
        ["ada-1001", "anon-ada-7f3", "anon-ada-phone", "ada.lovelace@example.org"]
    )
    assert [e["message_id"] for e in tables["events"] if e["channel"] != "system"][:6] == [
        "a1",
        "a2",
        "a3",
        "a4",
        "a5",
        "a6",
    ]
    assert {r["outcome"] for r in tables["identity_links"]} >= {"new", "merged"}
    [consent] = tables["privacy_consent_history"]
    assert (consent["channel"], consent["purpose"], consent["source"], consent["text"]) == (
        "email",
        "marketing",
        "signup form",
        "Yes, send me news and offers by email.",
    )
    [message] = tables["engage_messages"]
    assert message["payload"]["subject"] == "Hello Ada"
    assert {r["amount"] for r in tables["engage_ledger"]} == {100}
    assert [r["code"] for r in tables["engage_referral_codes"]] == ["ADAREF42"]
    assert [r["referee_id"] for r in tables["engage_referrals"]] == [world.bob]
    assert [r["order_id"] for r in tables["engage_coupon_redemptions"]] == ["ada-order-2"]
    assert tables["stage_transitions"] and tables["health_history"]
    assert [r["address"] for r in tables["engage_suppressions"]] == ["ada.lovelace@example.org"]
    assert json.dumps(document, default=str)  # one JSON document
    # What the export showed is what erasure removes (the ledger: the whole transactions).
    report = erase_customer(db, world.workspace_id, world.ada, who=TEST)
    for table, rows in tables.items():
        if table in ("engage_ledger", "events"):
            continue
        assert report.deleted.get(table, 0) == len(rows), table
    assert report.deleted["engage_ledger"] == 2 * len(tables["engage_ledger"])


def test_a_transactions_file_naming_the_erased_person_is_refused_by_line(
    db: Database, tmp_path: Path
) -> None:
    from clm.ingest.transactions import import_transactions

    world = build(db)
    erase_customer(db, world.workspace_id, world.ada, who=TEST)
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "customer_id,date,amount\ndan-4004,2024-05-01,10\nada-1001,2024-05-02,20\n"
        "ada-1001,2024-05-03,30\n"
    )
    report = import_transactions(db, world.workspace_id, orders)
    assert report.stored == 1
    assert [(r.line, "erased" in str(r.errors)) for r in report.rejected] == [
        (3, True),
        (4, True),
    ]
    assert traces(db, world) == []


def test_erasure_racing_ingestion_of_the_same_person_leaves_nothing(db: Database) -> None:
    """A sender keeps posting the person's events while the erasure runs: every batch either
    committed before (and is erased) or meets the tombstones; none fails, none survives."""
    import threading
    import time

    world = build(db)
    stop, failures, stored = threading.Event(), [], [0]

    def keep_sending() -> None:
        i = 0
        while not stop.is_set():
            batch = [
                {"type": "track", "userId": "ada-1001", "event": "Page Viewed",
                 "messageId": f"race-u-{i}"},
                {"type": "page", "anonymousId": "anon-ada-7f3", "messageId": f"race-a-{i}"},
            ]  # fmt: skip
            try:
                stored[0] += ingest(db, world.workspace_id, batch).stored
            except Exception as exc:  # any failure is the finding
                failures.append(exc)
            i += 1

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        deadline = time.monotonic() + 30
        while stored[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        erase_customer(db, world.workspace_id, world.ada, who=TEST)
        time.sleep(0.3)  # the sender keeps going against the tombstones
    finally:
        stop.set()
        sender.join(timeout=30)
    assert stored[0] >= 20
    assert failures == []
    assert traces(db, world) == []
