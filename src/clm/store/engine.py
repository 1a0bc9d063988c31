"""Open a database, apply migrations, hand out sessions.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` so that a committed
transaction survives a power cut: an acknowledged event must never be lost
(``CLM_SQLITE_SYNCHRONOUS=NORMAL`` trades that for speed: it still survives a crash or kill).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from sqlalchemy import Connection, Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from clm.config import get_settings

if sys.platform != "win32":
    import fcntl

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("clm.store")
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
_CHECKPOINT_PAUSE = 1.0  # seconds between background checkpoints, at the least


def _sqlite_pragmas(synchronous: str) -> Any:
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that writers can BEGIN IMMEDIATE (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk inserts touch many pages
        cursor.close()

    return connect


def _sqlite_begin(connection: Connection) -> None:
    # A write transaction takes the lock up front, so what it read cannot change under it
    # (other processes included); reads stay deferred and never block writers.
    immediate = connection.get_execution_options().get("clm_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_loads(text: str | bytes) -> Any:
    """JSON columns read back as they were written. PostgreSQL's ``jsonb`` keeps numbers as
    ``numeric``: a float such as ``1e25`` comes back as ``10000000000000000905969664``, an
    integer the standard parser returns exactly and orjson then refuses to write (past 64
    bits), so the row could be neither re-stored nor answered. orjson reads it as a float."""
    return orjson.loads(text)


def create_db_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for ``url``; a SQLite file's folder is created on first use."""
    if sqlite_synchronous not in ("FULL", "NORMAL"):
        raise ValueError("sqlite_synchronous must be FULL or NORMAL")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            json_serializer=_json_dumps,
            json_deserializer=_json_loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", None):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        json_serializer=_json_dumps,
        json_deserializer=_json_loads,
    )


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def pending_migrations(engine: Engine) -> list[str]:
    """The migrations this code has that the database lacks, oldest first: empty when its
    schema is this code's, or newer (a revision this code does not know, from a later
    checkout). For a program that opens a database without migrating it, as a benchmark or
    script opening a shared file must: a migration would change it for every other user."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory.from_config(_alembic_config())
    try:
        missing = scripts.iterate_revisions("heads", current)
        return [revision.revision for revision in reversed(list(missing))]
    except ResolutionError:  # ``current`` is not in this code's chain: a newer schema
        return []


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic; safe to call on every start."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
        if after != before and connection.dialect.name == "sqlite":
            _restat_sqlite(connection)


def _restat_sqlite(connection: Connection) -> None:
    """Give a migration's new indexes planner statistics where the others have them.

    SQLite plans with ``sqlite_stat1`` (a bulk import fills it): an index a migration adds
    later has no row there, and beside indexes that do the planner misjudges it (a report on
    the demo took 3.6 s of CPU against 2.0 s on a fresh build of the same data). Only the
    indexes without statistics are analysed, in full: a sampled ``ANALYZE`` of everything
    (``analysis_limit``) made the demo's plans worse (acquisition 1.15 -> 3.2 s). A database
    never analysed is left alone, so all its indexes stay on the same default estimates.
    """
    analysed = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).first()
    if not analysed:
        return
    missing = connection.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND name NOT IN (SELECT idx FROM sqlite_stat1 WHERE idx IS NOT NULL)"
    ).scalars()
    for name in list(missing):  # names from the schema itself, quoted as identifiers
        quoted = name.replace('"', '""')
        connection.exec_driver_sql(f'ANALYZE "{quoted}"')


class WalCheckpointer:
    """Copies SQLite's write-ahead log back into the database from a thread of its own.

    By default the connection that commits past 1,000 WAL pages does the checkpoint, inside
    that commit: the busiest writer (the ingestion writer) paid for it on the request path.
    While a checkpointer runs, this process' connections leave it to this thread (SQLite's
    advice for busy writers), which works with the GIL released, on the other core. Commits
    still flush the WAL first, so durability is unchanged. ``poke`` after a commit: at most
    one checkpoint a second follows, and at least one runs every second or so, so the log
    cannot grow without bound. Once a second, not five times: the hot index pages that
    many commits rewrote are copied once (four pairs of ingestion runs, 4-14% faster each,
    benchmarks/ingest/README.md).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="clm-wal-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=30000")
            while not self._stop:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                self._checkpoint(connection)
                time.sleep(_CHECKPOINT_PAUSE)  # each one writes and flushes the database file
            self._checkpoint(connection)
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # e.g. the file went away under a test; the next poke retries
            log.warning("WAL checkpoint failed", exc_info=True)


class FileWriteLock:
    """SQLite's one-writer rule, kept across processes by a blocking ``flock`` on a side file.

    Without it, a writer that finds the database locked sleeps in SQLite's busy handler
    (1, 2, 5 … 100 ms) however soon the lock is free: two server processes then took turns
    badly and their p99 reached seconds. ``flock`` wakes the next writer the moment the lock
    is released. Advisory only: a process that does not take it still meets SQLite's own
    lock, so correctness never depends on it. Where ``fcntl`` is missing (Windows), a no-op.
    """

    def __init__(self, database_path: str) -> None:
        self._path = f"{database_path}-writer.lock"
        self._fd: int | None = None

    def __enter__(self) -> None:
        if sys.platform != "win32":
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks with the GIL released

    def __exit__(self, *_exc: object) -> None:
        if sys.platform != "win32" and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


@dataclass
class Database:
    """An engine plus its session factory; the one handle services receive."""

    engine: Engine
    sessions: sessionmaker[Session] = field(init=False)
    # SQLite allows one writer: serialise writers in-process instead of spinning on SQLITE_BUSY.
    write_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    # Per-database, per-process state of the layers above (e.g. ingestion's identity cache).
    extensions: dict[str, Any] = field(default_factory=dict, init=False)
    _checkpointers: int = field(default=0, init=False)
    _checkpointers_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _file_lock: AbstractContextManager[None] = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        path = self.sqlite_file
        self._file_lock = FileWriteLock(path) if path else nullcontext()
        if self.dialect == "sqlite":
            event.listen(self.engine, "checkout", self._set_autocheckpoint)

    def _set_autocheckpoint(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        pages = 0 if self._checkpointers else _AUTOCHECKPOINT_PAGES
        if record.info.get("clm_autocheckpoint") != pages:
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={pages}")
            record.info["clm_autocheckpoint"] = pages

    def start_checkpointer(self) -> WalCheckpointer | None:
        """Checkpoint SQLite's WAL in a background thread until ``stop_checkpointer``; None
        where there is nothing to do (PostgreSQL, in-memory SQLite)."""
        path = self.sqlite_file
        if path is None:
            return None
        with self._checkpointers_lock:
            self._checkpointers += 1
        return WalCheckpointer(path)

    def stop_checkpointer(self, checkpointer: WalCheckpointer | None) -> None:
        if checkpointer is None:
            return
        with self._checkpointers_lock:
            self._checkpointers -= 1
        checkpointer.stop()

    @classmethod
    def open(cls, url: str, *, run_migrations: bool = True) -> Database:
        engine = create_db_engine(url, sqlite_synchronous=get_settings().sqlite_synchronous)
        if run_migrations:
            migrate(engine)
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite database file, or None (PostgreSQL, in-memory SQLite)."""
        path = self.engine.url.database
        if self.dialect != "sqlite" or not path or path == ":memory:":
            return None
        return path

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session; nothing it does is committed."""
        with self.sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction, committed on success; on SQLite it holds the writer lock."""
        if self.dialect == "sqlite":
            with self.write_lock, self._file_lock, self.sessions() as session, session.begin():
                session.connection(execution_options={"clm_write": True})
                yield session
        else:
            with self.sessions() as session, session.begin():
                yield session

    @contextmanager
    def quick_commits(self) -> Iterator[Callable[[Executable, dict[str, Any]], None]]:
        """A function running one statement in a transaction of its own, committed at once, on
        one connection held for the block: for small marks whose loss would only repeat work
        (e.g. "this message was sent"). A commit survives this process being killed, not the
        machine losing power, and costs microseconds instead of an fsync (SQLite
        ``synchronous=NORMAL`` on this connection, PostgreSQL ``synchronous_commit=off``).
        Calls may come from several threads, one at a time.
        """
        sqlite = self.dialect == "sqlite"
        with self.engine.connect() as connection:
            writer = connection.execution_options(clm_write=True)
            raw = connection.connection.dbapi_connection
            assert raw is not None
            level = None
            if sqlite:  # the safety level cannot change inside a transaction: set it now
                level = raw.execute("PRAGMA synchronous").fetchone()[0]
                raw.execute("PRAGMA synchronous=NORMAL")

            def commit(statement: Executable, parameters: dict[str, Any]) -> None:
                if sqlite:
                    with self.write_lock, self._file_lock, writer.begin():
                        writer.execute(statement, parameters)
                else:
                    with writer.begin():
                        writer.exec_driver_sql("SET LOCAL synchronous_commit = off")
                        writer.execute(statement, parameters)

            try:
                yield commit
            finally:
                if level is not None:
                    raw.execute(f"PRAGMA synchronous={int(level)}")

    def dispose(self) -> None:
        self.engine.dispose()
