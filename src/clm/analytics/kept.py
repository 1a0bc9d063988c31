"""Stored readings of the overview's whole-history aggregates: each reading is kept in the
database (``overview_readings``), so a freshly started server, and every process beside it,
answers from the last reading at once instead of reading the whole log again (a minute for
the churn report at 100,000 customers).

A reading is computed together with its *version*: cheap facts about its inputs (newest row
ids, row counts, definition ids), read *before* the computation, so a change made while it
runs is seen by the next request. A request (``Readings.get``):

1. takes the reading from this process's memory, or else from its stored row (one indexed
   read), and compares its version with the version of the data now;
2. current: answers with it;
3. not current: answers with it all the same, marked not current, and starts one refresh in
   a background thread of this process (at most one per ``min_interval`` seconds a reading;
   the process runs ``AT_ONCE`` of them at a time, the others wait their turn);
4. no reading at all (the very first): computes it and waits up to ``wait`` seconds, then
   answers None (the caller says "still reading"; the next request finds it).

A refresh writes its reading with an upsert that keeps the newer of two readings (by the
time each began), so two processes refreshing at once leave one whole, newest reading. The
live loop refreshes the overview's and the reports' default readings after its passes, ``clm
demo`` after building (``clm.analytics.overview_readings``; the reports' readings are
``clm.analytics.report_readings``); a request refreshes the rest on demand.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from clm.store.engine import Database
from clm.store.models import OverviewReading

T = TypeVar("T")
log = logging.getLogger("clm.analytics.kept")
EXTENSION = "clm.analytics.kept"  # the store's name in ``db.extensions``
MEMORY_SIZE = 64  # readings a process keeps in memory (each is at most a few hundred kB)
# Background readings a process runs at once: a whole-log report holds the GIL for much of
# its run, and seven at once (every report outdated by one event) made the server's other
# answers 20-50x slower (the Reports page's p95 14 -> 1,700 ms at 100,000 customers).
AT_ONCE = 1


@dataclass(frozen=True)
class Kind(Generic[T]):
    """One kind of reading: its name, how its value is stored, how long a first request waits
    for it and how often one process may refresh one reading of it."""

    name: str
    codec: TypeAdapter[T]
    wait: float
    min_interval: float


@dataclass(frozen=True)
class Reading(Generic[T]):
    """A value with the version of the data it was read from and when its reading began."""

    value: T
    version: str
    computed_at: datetime


Key = tuple[int, str, str]  # (workspace, kind, canonical parameters)


def canonical(value: Any) -> str:
    """One text per JSON value (tuples as lists, keys sorted): keys and versions compare as
    text, the same in every process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Readings:
    """The stored readings of one database, with this process's memory of them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._memory: dict[Key, Reading[Any]] = {}
        self._running: dict[Key, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._started: dict[Key, float] = {}
        self._failed: dict[Key, BaseException] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(AT_ONCE)

    def get(
        self,
        kind: Kind[T],
        workspace_id: int,
        params: Mapping[str, Any],
        *,
        version: Callable[[T], Any],
        compute: Callable[[], tuple[T, Any]],
        renew: Callable[[Reading[T]], bool] | None = None,
    ) -> tuple[Reading[T] | None, bool]:
        """(reading, current): the latest reading of ``kind`` at ``params`` and whether the
        data is still what it was read from (``version(value)`` is the data's version now for
        a reading of ``value``). ``compute`` returns a fresh value and the version it read
        first. ``renew`` asks for a background refresh of a current reading (e.g. a day
        over since it was taken). None only when there is no reading yet after ``wait``."""
        key = (workspace_id, kind.name, canonical(dict(params)))
        with self._lock:
            reading: Reading[T] | None = self._memory.get(key)
        if reading is not None and reading.version == canonical(version(reading.value)):
            self._renew(key, kind, compute, reading, renew)
            return reading, True
        stored = self._load(kind, key)
        if stored is not None and (reading is None or stored.computed_at >= reading.computed_at):
            reading = self._remember(key, stored)
            if reading.version == canonical(version(reading.value)):
                self._renew(key, kind, compute, reading, renew)
                return reading, True
        if reading is not None:
            self._start(key, kind, compute, force=False)
            return reading, False
        done = self._start(key, kind, compute, force=True)
        done.wait(kind.wait)
        with self._lock:
            failed = self._failed.pop(key, None)
            reading = self._memory.get(key)
        if failed is not None:
            raise failed
        return reading, reading is not None

    def refresh(
        self, kind: Kind[T], workspace_id: int, params: Mapping[str, Any],
        compute: Callable[[], tuple[T, Any]],
    ) -> Reading[T]:  # fmt: skip
        """Compute and store a reading now, in this thread (the live loop, ``clm demo``)."""
        key = (workspace_id, kind.name, canonical(dict(params)))
        return self._compute(key, kind, compute)

    def ensure(
        self,
        kind: Kind[T],
        workspace_id: int,
        params: Mapping[str, Any],
        *,
        version: Callable[[T], Any],
        compute: Callable[[], tuple[T, Any]],
        renew: Callable[[Reading[T]], bool] | None = None,
    ) -> bool:
        """Store a new reading now, in this thread, unless the stored one is current (and not
        due for renewal) or was taken less than ``min_interval`` seconds ago, by any process;
        True when it did (the live loop's step)."""
        key = (workspace_id, kind.name, canonical(dict(params)))
        stored = self._load(kind, key)
        if stored is not None:
            due = renew is not None and renew(stored)
            if stored.version == canonical(version(stored.value)) and not due:
                self._remember(key, stored)
                return False
            age = (datetime.now(UTC) - stored.computed_at).total_seconds()
            if age < kind.min_interval:
                return False
        self._compute(key, kind, compute)
        return True

    def stored(
        self, kind: Kind[T], workspace_id: int, params: Mapping[str, Any]
    ) -> Reading[T] | None:
        """The stored reading of ``kind`` at ``params`` (not this process's memory of it)."""
        return self._load(kind, (workspace_id, kind.name, canonical(dict(params))))

    def prune(self, workspace_id: int, before: datetime) -> int:
        """Delete the workspace's readings taken before ``before`` (ranges nobody asks for
        any more; the live loop reads its defaults again at once); how many went."""
        r = OverviewReading
        with self.db.transaction() as session:
            gone = session.execute(
                delete(r).where(r.workspace_id == workspace_id, r.computed_at < before)
            )
        return int(gone.rowcount or 0)  # type: ignore[attr-defined]

    def forget(self) -> None:
        """Drop this process's memory (as a restart would); the stored readings stay."""
        with self._lock:
            self._memory.clear()
            self._started.clear()

    def settle(self, timeout: float = 60.0) -> None:
        """Wait for the background refreshes started so far (tests, a clean shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    # --- inside --------------------------------------------------------------------------

    def _renew(
        self, key: Key, kind: Kind[T], compute: Callable[[], tuple[T, Any]],
        reading: Reading[T], renew: Callable[[Reading[T]], bool] | None,
    ) -> None:  # fmt: skip
        if renew is not None and renew(reading):
            self._start(key, kind, compute, force=False)

    def _remember(self, key: Key, reading: Reading[T]) -> Reading[T]:
        with self._lock:
            known = self._memory.get(key)
            if known is not None and known.computed_at > reading.computed_at:
                return known
            if len(self._memory) >= MEMORY_SIZE and key not in self._memory:
                oldest = min(self._memory, key=lambda k: self._memory[k].computed_at)
                del self._memory[oldest]
            self._memory[key] = reading
        return reading

    def _load(self, kind: Kind[T], key: Key) -> Reading[T] | None:
        workspace_id, name, params = key
        r = OverviewReading
        with self.db.session() as session:
            row = session.execute(
                select(r.version, r.computed_at, r.value).where(
                    r.workspace_id == workspace_id, r.kind == name, r.params == params
                )
            ).first()
        if row is None:
            return None
        try:
            value = kind.codec.validate_json(row.value)
        except PydanticValidationError:  # stored by an older CLM in another shape: read again
            return None
        return Reading(value, row.version, row.computed_at)

    def _compute(self, key: Key, kind: Kind[T], compute: Callable[[], tuple[T, Any]]) -> Reading[T]:
        began = datetime.now(UTC)
        value, version = compute()
        reading = Reading(value, canonical(version), began)
        self._store(key, kind, reading)
        return self._remember(key, reading)

    def _store(self, key: Key, kind: Kind[T], reading: Reading[T]) -> None:
        """Insert or replace the stored reading, unless a newer one is there already."""
        workspace_id, name, params = key
        table = OverviewReading.__table__
        assert isinstance(table, Table)
        insert = postgresql_insert if self.db.dialect == "postgresql" else sqlite_insert
        statement = insert(table).values(
            workspace_id=workspace_id, kind=name, params=params, version=reading.version,
            computed_at=reading.computed_at, value=kind.codec.dump_json(reading.value).decode(),
        )  # fmt: skip
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.workspace_id, table.c.kind, table.c.params],
            set_={
                "version": excluded.version,
                "computed_at": excluded.computed_at,
                "value": excluded.value,
            },
            where=table.c.computed_at <= excluded.computed_at,
        )
        with self.db.transaction() as session:
            session.execute(statement)

    def _start(
        self, key: Key, kind: Kind[T], compute: Callable[[], tuple[T, Any]], *, force: bool
    ) -> threading.Event:
        """One background refresh of ``key`` at a time, at most one per ``min_interval``."""
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            done = threading.Event()
            last = self._started.get(key)
            if not force and last is not None and time.monotonic() - last < kind.min_interval:
                done.set()
                return done
            self._running[key] = done
            self._started[key] = time.monotonic()
            self._failed.pop(key, None)

        def work() -> None:
            try:
                with self._slots:  # one background reading at a time: see AT_ONCE
                    self._compute(key, kind, compute)
            except BaseException as problem:  # handed to a request waiting for it
                log.warning("overview reading failed", exc_info=True, extra={"kind": kind.name})
                with self._lock:
                    self._failed[key] = problem
            finally:
                with self._lock:
                    self._running.pop(key, None)
                    self._threads = [t for t in self._threads if t.is_alive() and t is not me]
                done.set()

        me = threading.Thread(target=work, name="clm-reading", daemon=True)
        with self._lock:
            self._threads.append(me)
        me.start()
        return done


def readings_of(db: Database) -> Readings:
    """The readings of one database (in ``db.extensions``, which is cleared with the rows it
    describes, e.g. when tests empty the database)."""
    found = db.extensions.get(EXTENSION)
    if found is None:
        found = db.extensions[EXTENSION] = Readings(db)
    return found  # type: ignore[no-any-return]
