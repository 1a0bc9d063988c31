"""Bulk import of event files and transaction logs, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import polars as pl
import pytest
from sqlalchemy import func, select

from clm.errors import ValidationError
from clm.ingest import ingest
from clm.ingest.importer import import_events, import_transactions
from clm.store import customers as repo
from clm.store.engine import Database
from clm.store.models import Event
from tests.conftest import Tenant, make_tenant


def count_events(db: Database, workspace_id: int) -> int:
    with db.session() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Event).where(Event.workspace_id == workspace_id)
            )
            or 0
        )


def test_transaction_log_becomes_purchase_events(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    log = tmp_path / "orders.csv"
    log.write_text(
        "cust,day,total,cds\n"
        "A,2024-01-05,10.50,1\n"
        "A,2024-01-05,10.50,1\n"  # the same purchase twice on one day: two events
        "B,20240106,7,2\n"  # not ISO: rejected
        ",2024-01-07,3,1\n"  # no customer
        "C,2024-01-08,-4,1\n"  # negative
        "C,2024-01-09,abc,1\n"  # not a number
        "C,2024-01-10T15:30:00+02:00,20,3\n"
    )
    report = import_transactions(
        db, tenant.id, log, customer="cust", date="day", amount="total", quantity="cds"
    )
    assert (report.read, report.stored, report.duplicates) == (7, 3, 0)
    assert [(r.line, r.errors[0]["message"]) for r in report.rejected] == [
        (4, "day: not a date"),
        (5, "cust: missing customer"),
        (6, "total: negative; import refunds as their own events"),
        (7, "total: not a number"),
    ]
    with db.session() as session:
        a = repo.find_customer(session, tenant.id, "user_id", "A")
        c_events = repo.timeline(
            session, tenant.id, repo.find_customer(session, tenant.id, "user_id", "C").id
        )
    assert a.event_count == 2
    assert c_events[0].name == "Order Completed"
    assert c_events[0].revenue == 20.0
    assert c_events[0].properties == {"revenue": 20.0, "quantity": 3.0}
    assert c_events[0].timestamp == datetime(2024, 1, 10, 13, 30, tzinfo=UTC)
    again = import_transactions(
        db, tenant.id, log, customer="cust", date="day", amount="total", quantity="cds"
    )
    assert (again.stored, again.duplicates) == (0, 3)
    assert count_events(db, tenant.id) == 3


def test_cdnow_format_with_date_format(db: Database, tenant: Tenant, tmp_path: Path) -> None:
    log = tmp_path / "cdnow.txt"
    log.write_text(
        " customer_id  date number_of_cds  dollar_value\r\n"
        " 00001 19970101  1   11.77\r\n"
        " 00002 19970112  1   12.00\r\n"
        " 00002 19970112  5   77.00\r\n"
    )
    report = import_transactions(
        db,
        tenant.id,
        log,
        customer="customer_id",
        date="date",
        amount="dollar_value",
        quantity="number_of_cds",
        date_format="%Y%m%d",
    )
    assert (report.stored, report.rejected) == (3, [])
    with db.session() as session:
        two = repo.find_customer(session, tenant.id, "user_id", "00002")
    assert two.event_count == 2
    assert two.first_seen_at == datetime(1997, 1, 12, tzinfo=UTC)


def test_dataframes_and_the_copy_path(db: Database, tenant: Tenant) -> None:
    n = 3_000  # above the size where PostgreSQL switches to COPY
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i % 250}" for i in range(n)],
            "date": pd.to_datetime("2023-01-01")
            + pd.to_timedelta([i % 365 for i in range(n)], "D"),
            "amount": [float(i % 17) for i in range(n)],
        }
    )
    report = import_transactions(db, tenant.id, frame)
    assert (report.stored, report.duplicates, report.rejected) == (n, 0, [])
    again = import_transactions(db, tenant.id, pl.from_pandas(frame))
    assert (again.stored, again.duplicates) == (0, n)
    assert count_events(db, tenant.id) == n
    with db.session() as session:
        assert repo.list_customers(session, tenant.id, limit=1000).next_after is None
        assert len(repo.list_customers(session, tenant.id, limit=1000).items) == 250


def test_missing_columns_are_named(db: Database, tenant: Tenant) -> None:
    frame = pl.DataFrame({"who": ["a"], "when": ["2024-01-01"], "paid": [1.0]})
    with pytest.raises(ValidationError, match=r"customer_id, date, amount.*who, when, paid"):
        import_transactions(db, tenant.id, frame)


def test_event_file_jsonl_reports_lines_and_resolves_identity(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    lines = [
        orjson.dumps(
            {
                "type": "page",
                "anonymousId": "v1",
                "messageId": "1",
                "timestamp": "2024-02-01T10:00:00Z",
            }
        ),
        b"{oops",
        orjson.dumps(
            {
                "type": "identify",
                "anonymousId": "v1",
                "userId": "u1",
                "messageId": "2",
                "traits": {"email": "u1@x.test"},
            }
        ),
        b"",
        orjson.dumps({"type": "track", "userId": "u1", "messageId": "3"}),
        orjson.dumps([1, 2]),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = import_events(db, tenant.id, path)
    assert (report.read, report.stored) == (5, 2)
    assert [r.line for r in report.rejected] == [2, 5, 6]
    assert report.rejected[1].errors[0]["loc"] == ["event"]
    with db.session() as session:
        customer = repo.find_customer(session, tenant.id, "anonymous_id", "v1")
    assert customer.user_id == "u1"
    assert customer.event_count == 2
    assert import_events(db, tenant.id, path).duplicates == 2


def test_flat_csv_events_with_mapping(db: Database, tenant: Tenant, tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        "contact,action,properties.channel,properties.minutes,when,id\n"
        "u7,Sales Call,phone,12,2024-03-01T09:00:00Z,call-1\n"
        "u7,,phone,3,2024-03-02T09:00:00Z,call-2\n"
    )
    report = import_events(
        db,
        tenant.id,
        path,
        mapping={"contact": "userId", "action": "event", "when": "timestamp", "id": "messageId"},
    )
    assert report.stored == 1
    assert [(r.line, r.errors[0]["loc"]) for r in report.rejected] == [(3, ["event"])]
    with db.session() as session:
        event = repo.list_events(session, tenant.id).items[0]
    assert (event.name, event.channel, event.properties["minutes"]) == ("Sales Call", "phone", "12")


def test_import_equals_http_ingestion(db: Database, tenant: Tenant, tmp_path: Path) -> None:
    messages = [
        {
            "type": "page",
            "anonymousId": "a",
            "messageId": "m1",
            "name": "Home",
            "timestamp": "2024-01-01T00:00:00Z",
            "context": {"campaign": {"medium": "cpc", "name": "spring", "source": "google"}},
        },
        {
            "type": "identify",
            "anonymousId": "a",
            "userId": "u",
            "messageId": "m2",
            "timestamp": "2024-01-01T00:01:00Z",
            "traits": {"plan": "pro"},
        },
        {
            "type": "track",
            "userId": "u",
            "event": "Order Completed",
            "messageId": "m3",
            "properties": {"revenue": 5},
            "timestamp": "2024-01-02T00:00:00Z",
        },
    ]
    other = make_tenant(db, "mirror")
    ingest(db, tenant.id, messages)
    path = tmp_path / "same.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(m) for m in messages))
    import_events(db, other.id, path)

    def shape(workspace_id: int) -> list[tuple[object, ...]]:
        with db.session() as session:
            items = repo.list_events(session, workspace_id).items
        return [
            (
                e.message_id,
                e.type,
                e.name,
                e.user_id,
                e.anonymous_id,
                e.timestamp,
                e.channel,
                e.campaign,
                e.source,
                e.revenue,
            )
            for e in items
        ]

    assert shape(tenant.id) == shape(other.id)
