"""A customer-list read after an import bigger than ``READ_REFRESH``, on SQLite and
PostgreSQL, with no live loop (``clm serve`` alone): the list never shows fewer customers than
it held before the import, says it is refreshing, and catches up by itself."""

from __future__ import annotations

from typing import Any

from clm.ingest import ingest
from clm.lifecycle.current_state import READ_REFRESH, settle_refreshes
from clm.lifecycle.customer_list import CustomerQuery, list_customers
from clm.store.engine import Database
from tests.lifecycle.logs import DAY, message, new_workspace

BEFORE = ["ann", "bob", "cid"]
NEW, EACH = 60, 100  # an import of 6,000 events: 60 new customers, 100 page views each


def _import() -> list[dict[str, Any]]:
    assert NEW * EACH > READ_REFRESH  # bigger than a read catches up on itself
    return [
        message(f"new{c}", 10 * DAY + i, f"n{c}-{i}", kind="page")
        for c in range(NEW)
        for i in range(EACH)
    ]


def _listed(db: Database, ws: int) -> tuple[int, bool]:
    page = list_customers(db, ws, CustomerQuery(per_page=10))
    return page.total, page.refreshing


def test_stored_rows_are_served_while_a_big_import_is_caught_up_in_the_background(
    db: Database,
) -> None:
    ws = new_workspace(db)
    ingest(db, ws, [message(u, DAY, f"{u}0", kind="identify") for u in BEFORE])
    assert _listed(db, ws) == (3, False)  # 3 events: caught up by the read itself
    ingest(db, ws, _import())
    total, refreshing = _listed(db, ws)
    assert refreshing
    # The stored three (or all, if the background refresh already committed): never 0.
    assert total in (3, 3 + NEW)
    settle_refreshes(db)
    assert _listed(db, ws) == (3 + NEW, False)  # no worker ran: this process caught up


def test_rows_never_built_are_built_by_the_first_read(db: Database) -> None:
    ws = new_workspace(db)
    ingest(db, ws, [message(u, DAY, f"{u}0", kind="identify") for u in BEFORE])
    ingest(db, ws, _import())  # before any read: no stored row at all
    assert _listed(db, ws) == (3 + NEW, False)  # well within READ_WAIT at this size
    settle_refreshes(db)
