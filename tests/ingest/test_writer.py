"""The group-commit writer: batches committed together, and SQLite's WAL copied back in the
background while it runs (by SQLite's own rule when it does not)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from clm.ingest.normalize import EventRecord
from clm.ingest.service import parse_messages
from clm.ingest.writer import EventWriter
from clm.store.engine import Database
from tests.conftest import make_tenant


def _records(prefix: str, count: int) -> list[EventRecord]:
    raws = [
        {"type": "track", "userId": f"u{i % 7}", "event": "Seen", "messageId": f"{prefix}{i}"}
        for i in range(count)
    ]
    records, rejected = parse_messages(raws, datetime.now(UTC))
    assert rejected == []
    return records


def _autocheckpoint(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one())


def test_writer_stores_every_batch_once_and_checkpoints_in_background(
    sqlite_db: Database, tmp_path: Path
) -> None:
    workspace = make_tenant(sqlite_db).id
    writer = EventWriter(sqlite_db)
    try:
        assert _autocheckpoint(sqlite_db) == 0  # commits leave the WAL to the writer's thread
        futures = [writer.submit(workspace, _records(f"b{b}-", 50)) for b in range(6)]
        retry = writer.submit(workspace, _records("b0-", 50))  # a client's retry: all known
        assert [f.result(timeout=30) for f in futures] == [(50, 0)] * 6
        assert retry.result(timeout=30) == (0, 50)
    finally:
        writer.close()
    assert _autocheckpoint(sqlite_db) == 1000  # SQLite's own rule again
    with sqlite_db.session() as session:
        assert session.execute(text("SELECT count(*) FROM events")).scalar_one() == 300
        assert session.execute(text("SELECT count(*) FROM customers")).scalar_one() == 7
    # The checkpoints copied every commit into the database file itself: a copy of that file
    # alone, without its write-ahead log, holds all the events.
    alone = tmp_path / "alone.sqlite"
    shutil.copyfile(tmp_path / "clm.sqlite", alone)
    raw = sqlite3.connect(alone)
    try:
        assert raw.execute("SELECT count(*) FROM events").fetchone() == (300,)
    finally:
        raw.close()


def test_a_write_transaction_holds_the_file_lock_other_processes_queue_on(
    sqlite_db: Database,
) -> None:
    """Writers of other processes wait on a blocking ``flock`` (woken at once on release)
    rather than in SQLite's sleeping busy handler: the lock is held exactly while a write
    transaction is open."""
    import fcntl
    import os

    make_tenant(sqlite_db)
    fd = os.open(f"{sqlite_db.engine.url.database}-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        with sqlite_db.transaction(), pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once committed
        fcntl.flock(fd, fcntl.LOCK_UN)
        with sqlite_db.session():  # readers never take it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def test_batches_of_one_group_get_their_own_counts(db: Database) -> None:
    """A group commit stores each workspace's batches together, yet answers each batch with
    its own counts: a message repeated in a later batch is that batch's duplicate."""
    from clm.ingest.writer import commit_batches

    shop, other = make_tenant(db).id, make_tenant(db, "other").id
    assert commit_batches(db, [(shop, _records("old", 2))]) == [(2, 0)]
    first, second = _records("a", 3), _records("a", 5)[1:]  # a1, a2 again, then a3, a4
    results = commit_batches(
        db, [(shop, first), (other, _records("a", 3)), (shop, second), (shop, _records("old", 1))]
    )
    assert results == [(3, 0), (3, 0), (2, 2), (0, 1)]
    with db.session() as session:
        counted = session.execute(
            text("SELECT workspace_id, count(*) FROM events GROUP BY workspace_id")
        ).all()
    assert dict(tuple(row) for row in counted) == {shop: 7, other: 3}
