"""Named locks that hold across threads and processes, for work that must run one at a time.

Some jobs read, decide and then write in several transactions (the engagement tick reads its
cursor and who is already enrolled, then enrols; the live pass recomputes stage histories then
announces them). Each transaction is sound on its own, but two runners interleaving them (the
worker's minute tick beside a live pass, two ``clm worker`` processes, ``clm playbook tick``
from a shell) both see "not enrolled yet" and both enrol: one customer, two welcome emails.
These locks make such a job run alone per workspace. ``until_commit`` is the short form, for
work that fits in one transaction (one ingestion batch, one balance change).

- PostgreSQL: a session advisory lock on a connection of its own, released when the block
  ends or, if the process dies, when its connection drops.
- SQLite file: ``flock`` on a side file next to the database, one per lock and workspace. The
  kernel drops it if the process dies.
- In-memory SQLite: a lock of this process (nobody else can open that database).

A second runner waits for the first rather than skipping: what it was asked to do (a nudge
after new events) may postdate the first runner's reads, and the wait is short.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

from clm.store.engine import Database

if sys.platform != "win32":
    import fcntl

_LOCAL = "store.locks"


# PostgreSQL's two-int advisory key: the name within this schema (tests and tenants of one
# server share its advisory locks), and the workspace or row id folded into 32 bits.
_PG_KEY = "hashtext(current_schema() || ':' || :name), :key"


def _int4(key: int) -> int:
    """``key`` folded into PostgreSQL's signed 32-bit range (a collision only makes two holders
    take turns needlessly)."""
    return (key + (1 << 31)) % (1 << 32) - (1 << 31)


def _checked(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(f"lock name {name!r}: lowercase letters, digits, - and _ only")
    return name


def until_commit(session: Session, name: str, key: int) -> None:
    """Hold ``(name, key)`` until ``session``'s transaction ends, so writers of one thing take
    turns. PostgreSQL only: a SQLite write transaction already holds the one writer's lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(f"SELECT pg_advisory_xact_lock({_PG_KEY})"),
            {"name": _checked(name), "key": _int4(key)},
        )


@contextmanager
def one_at_a_time(
    db: Database, name: str, workspace_id: int, *, wait: bool = True
) -> Iterator[bool]:
    """Run the block alone: no other thread or process holds ``(name, workspace_id)`` meanwhile.

    Yields True when held. With ``wait=False`` it does not wait for another holder: it yields
    False at once, and the block must then leave the work to that holder. Not re-entrant: a
    block must not ask again for the lock it holds (it would wait forever).
    """
    _checked(name)
    if db.dialect == "postgresql":
        params = {"name": name, "key": _int4(workspace_id)}
        call = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        # Autocommit: the lock is the session's, and no transaction stays open while held.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            got = connection.execute(text(f"SELECT {call}({_PG_KEY})"), params).scalar()
            held = wait or bool(got)
            try:
                yield held
            finally:
                if held:
                    connection.execute(text(f"SELECT pg_advisory_unlock({_PG_KEY})"), params)
        return
    path = db.sqlite_file
    if path is None or sys.platform == "win32":
        locks: dict[tuple[str, int], threading.Lock] = db.extensions.setdefault(_LOCAL, {})
        lock = locks.setdefault((name, workspace_id), threading.Lock())
        held = lock.acquire(blocking=wait)
        try:
            yield held
        finally:
            if held:
                lock.release()
        return
    # A descriptor per holder: flock locks belong to the open file, so two threads of one
    # process, each with its own descriptor, exclude each other as two processes do.
    fd = os.open(f"{path}-{name}-{workspace_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True  # blocking, the wait happens with the GIL released
        except BlockingIOError:
            held = False
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the lock
