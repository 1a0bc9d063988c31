"""Generated import files against real SQLite and PostgreSQL: transaction logs (CSV) and event
files (JSON Lines) mixing good rows with hostile ones (non-finite, huge and negative amounts,
malformed dates, empty fields, 30-digit ids, odd unicode, quotes and commas). Whatever the file,
every good row is stored exactly once, every bad row is reported by its line, a second import
adds nothing, and what is stored reads back."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from clm.ingest.importer import import_events, import_transactions
from clm.store import customers as repo
from clm.store.engine import Database
from tests.conftest import make_tenant

_counter = itertools.count()
_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Customer ids a file may hold: no surrounding blanks (the reader strips them), no NUL.
customer_ids = st.one_of(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r\n"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool),
    st.sampled_from(["123456789012345678901234567890", 'a "quoted", id', "é\u200bü", "😀"]),
    st.integers(min_value=0, max_value=10**30).map(str),
)
good_dates = st.sampled_from(["2024-03-01", "2024-03-01T10:00:00Z", "1999-12-31 23:59:59"])
good_amounts = st.one_of(
    st.floats(min_value=0, max_value=1e9, allow_nan=False).map(repr),
    st.sampled_from(["0", "12.50", "1e3"]),
)
# A NUL inside an id is dropped, as the HTTP API drops it (PostgreSQL text cannot hold it).
with_nul = customer_ids | customer_ids.map(lambda c: c[:1] + "\x00" + c[1:])
good_txn = st.tuples(st.just(True), with_nul, good_dates, good_amounts)
bad_txn = st.one_of(
    st.tuples(
        st.just(False), st.sampled_from(["", "   ", "\x00", " \x00 "]), good_dates, good_amounts
    ),
    st.tuples(
        st.just(False),
        customer_ids,
        st.sampled_from(["", "2024-13-01", "yesterday", "2024-02-30", "01/02/2024"]),
        good_amounts,
    ),
    st.tuples(
        st.just(False),
        customer_ids,
        good_dates,
        st.sampled_from(["", "inf", "-inf", "1e400", "nan", "NaN", "-3", "abc", "1,5"]),
    ),
)


@pytest.mark.slow
@seed(1616)
@_SETTINGS
@given(rows=st.lists(st.one_of(good_txn, bad_txn), min_size=1, max_size=12))
def test_any_transaction_file_stores_good_rows_once_and_reports_bad_lines(
    db: Database, tmp_path: Path, rows: list[tuple[bool, str, str, str]]
) -> None:
    tenant = make_tenant(db, f"tf{next(_counter)}")
    path = tmp_path / f"log{next(_counter)}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "date", "amount"])
        writer.writerows(row[1:] for row in rows)
    good = [(ok, c.replace("\x00", ""), d, a) for ok, c, d, a in rows if ok]
    bad_lines = [line for line, row in enumerate(rows, start=2) if not row[0]]

    report = import_transactions(db, tenant.id, path)
    assert report.read == len(rows)
    assert (report.stored, report.duplicates) == (len(good), 0)
    assert sorted(r.line for r in report.rejected) == bad_lines
    assert all(r.errors for r in report.rejected)

    again = import_transactions(db, tenant.id, path)
    assert (again.stored, again.duplicates) == (0, len(good))

    with db.session() as session:
        stats = repo.workspace_stats(session, tenant.id)
        page = repo.list_events(session, tenant.id, limit=100)
    assert stats.customers == len({customer for _, customer, _, _ in good})
    assert stats.purchases == len(good) == len(page.items)
    assert math.isclose(stats.revenue, sum(float(a) for *_, a in good), rel_tol=1e-9)
    assert {e.user_id for e in page.items} == {customer for _, customer, _, _ in good}


# --- event files ---------------------------------------------------------------------------

good_event = st.builds(
    lambda user, amount, when: {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "timestamp": when,
        "properties": {"revenue": float(amount), "note": 'a,"b"\n\x00c'},
    },
    customer_ids,
    good_amounts,
    st.sampled_from(["2024-03-01T10:00:00Z", "2024-03-01T10:00:00+02:00"]),
)
bad_lines_text = st.sampled_from(
    [
        b"{",
        b"[1, 2]",
        b"42",
        b'"text"',
        b'{"type": "track", "event": "no one"}',  # neither userId nor anonymousId
        b'{"type": "bogus", "userId": "u"}',
        b'{"type": "track", "userId": "u", "event": "x", "timestamp": "not a date"}',
        b"\xff\xfe not utf-8",
    ]
)


@pytest.mark.slow
@seed(1617)
@_SETTINGS
@given(lines=st.lists(st.one_of(good_event, bad_lines_text), min_size=1, max_size=10))
def test_any_event_file_stores_good_lines_once_and_reports_bad_ones(
    db: Database, tmp_path: Path, lines: list[dict[str, Any] | bytes]
) -> None:
    tenant = make_tenant(db, f"ef{next(_counter)}")
    path = tmp_path / f"events{next(_counter)}.jsonl"
    good: list[dict[str, Any]] = []
    with path.open("wb") as handle:
        for n, line in enumerate(lines):
            if isinstance(line, dict):
                message = {**line, "messageId": f"m{n}"}
                good.append(message)
                handle.write(orjson.dumps(message) + b"\n")
            else:
                handle.write(line + b"\n")
    bad_lines = [n for n, line in enumerate(lines, start=1) if isinstance(line, bytes)]

    report = import_events(db, tenant.id, path)
    assert report.read == len(lines)
    assert (report.stored, report.duplicates) == (len(good), 0)
    assert [r.line for r in report.rejected] == bad_lines
    assert all(r.errors for r in report.rejected)

    again = import_events(db, tenant.id, path)
    assert (again.stored, again.duplicates) == (0, len(good))

    with db.session() as session:
        stats = repo.workspace_stats(session, tenant.id)
        page = repo.list_events(session, tenant.id, limit=100)
    assert stats.customers == len({m["userId"] for m in good})
    assert len(page.items) == len(good)
    assert math.isclose(stats.revenue, sum(m["properties"]["revenue"] for m in good), rel_tol=1e-9)
    for event in page.items:
        assert b"\\u0000" not in orjson.dumps(event.model_dump(mode="json"))
