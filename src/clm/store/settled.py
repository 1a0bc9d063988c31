"""How far a cursor over row ids may move: the newest id below which every row is committed.

Consumers of the append-only tables (the event log above all) keep a cursor, process
``cursor < id <= top`` and store ``top``. On PostgreSQL the largest visible id is not a safe
``top``: a transaction draws id 10 from the sequence, another commits id 11, a consumer reads up
to 11 and stores it, and only then does the first commit, under the cursor, never seen. Ids are
drawn in increasing order, so an uncommitted id below the largest visible one belongs to a
transaction open at that instant that has drawn from the table's sequence (``nextval`` holds a
``RowExclusiveLock`` on the sequence until the transaction ends; inserting holds one on the
table). ``settled_tops`` reads the largest ids and, in the same statement, those transactions,
waits (at most ``settle_seconds``) for them to end, and returns the ids, or ``None`` when one is
still open: the caller then keeps its cursor and tries again on its next pass. No writer has to
cooperate, so every writer of the log (ingestion, CLM's own events, stage and health
announcements, scores, imports) is covered, in any process. Readers (``AccessShareLock``) are
not waited for.

SQLite has one writer at a time, from its first write to its commit, and it draws its ids
(``max(id) + 1`` or the rowid) under that lock: commit order is id order, and the largest
visible id is settled. There the ids are read as they always were.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import text

from clm.store.engine import Database

SETTLE_SECONDS = 5.0
"""How long a reader waits for the writers that may hold a smaller id (ingest transactions
last milliseconds; a longer one makes the consumer skip a pass, not lose a row)."""

# Tables whose ids consumers read after a cursor (identifiers interpolated below: ours only).
_TABLES = frozenset({"events", "stage_transitions", "identity_links", "health_history"})

# The transactions still open of a list of (pid, start) keys; a transaction has no xid until
# it writes, and ``nextval`` may not give it one, so it is named by its backend and start time.
_STILL_OPEN = text(
    "SELECT ARRAY(SELECT pid::text || ' ' || xact_start::text FROM pg_stat_activity "
    "WHERE pid::text || ' ' || xact_start::text = ANY(CAST(:open AS text[])))"
)
# Writers seen open past a whole wait (a long import): later reads in this process return at
# once while one of them is still open, instead of each waiting ``settle_seconds`` again.
_LONG_WRITERS = "clm.store.settled.long_writers"


def _max_ids(tables: Sequence[str], by_workspace: bool) -> str:
    where = " WHERE workspace_id = :ws" if by_workspace else ""
    return ", ".join(f"(SELECT max(id) FROM {t}{where})" for t in tables)  # noqa: S608


def _snapshot_sql(tables: Sequence[str], by_workspace: bool) -> str:
    tops = _max_ids(tables, by_workspace)
    relations = ", ".join(
        f"CAST('{t}' AS regclass), CAST(pg_get_serial_sequence('{t}', 'id') AS regclass)"
        for t in tables
    )
    return (
        f"SELECT {tops}, ARRAY(SELECT DISTINCT a.pid::text || ' ' || a.xact_start::text "  # noqa: S608
        "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'relation' AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        f"AND l.relation IN ({relations}) "
        "AND l.mode NOT IN ('AccessShareLock', 'RowShareLock') "
        "AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL)"
    )


def settled_tops(
    db: Database,
    tables: Sequence[str],
    *,
    workspace_id: int | None = None,
    settle_seconds: float | None = None,
) -> tuple[int, ...] | None:
    """The largest id of each table (of one workspace's rows when ``workspace_id`` is given)
    such that every smaller id is committed or never will be; ``None`` when a writer that may
    hold a smaller id is still open after ``settle_seconds`` (default ``SETTLE_SECONDS``)."""
    unknown = set(tables) - _TABLES
    if unknown:
        raise ValueError(f"not a table read by id cursors: {sorted(unknown)}")
    params = {} if workspace_id is None else {"ws": workspace_id}
    if db.dialect != "postgresql":
        with db.session() as session:
            sql = text("SELECT " + _max_ids(tables, workspace_id is not None))
            row = session.execute(sql, params).one()
        return tuple(int(v or 0) for v in row)
    long_writers: set[str] = db.extensions.setdefault(_LONG_WRITERS, set())
    with db.engine.connect() as conn:
        *found, open_then = conn.execute(
            text(_snapshot_sql(tables, workspace_id is not None)), params
        ).one()
        conn.commit()  # pg_stat_activity is read once per transaction
        wait = SETTLE_SECONDS if settle_seconds is None else settle_seconds
        deadline = time.monotonic() + wait
        while open_then:
            still = set(conn.execute(_STILL_OPEN, {"open": list(open_then)}).scalar_one())
            conn.commit()
            long_writers.difference_update(set(open_then) - still)  # ended
            if not still:
                break
            if still & long_writers:
                return None
            if time.monotonic() >= deadline:
                long_writers.update(still)
                return None
            open_then = list(still)
            time.sleep(0.05)
    return tuple(int(v or 0) for v in found)


def settled_top(
    db: Database,
    table: str = "events",
    *,
    workspace_id: int | None = None,
    settle_seconds: float | None = None,
) -> int | None:
    """``settled_tops`` of one table."""
    tops = settled_tops(db, [table], workspace_id=workspace_id, settle_seconds=settle_seconds)
    return None if tops is None else tops[0]
