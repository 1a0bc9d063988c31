"""SQLite's own floor for the bulk import: how fast can SQLite itself insert the import's rows?

    .venv/bin/python benchmarks/ingest/sqlite_floor.py              # 1M rows, ~1.5 minutes
    .venv/bin/python benchmarks/ingest/sqlite_floor.py --rows 200000

The rows are the transaction importer's own (``clm.ingest.transactions``: the same generated
log as ``run.py``'s bulk import, the same polars preparation, sorted by message id, the same
constant columns as SQL literals) into the real ``events`` schema (``Database.open`` on a
temporary file: migrations, foreign keys on, WAL, ``synchronous`` as configured, the import's
512 MiB page cache, the background WAL checkpointer, one transaction per ``--chunk`` rows).

- **C floor**: ``INSERT INTO events SELECT ... FROM`` a temporary table holding the 8 varying
  columns: no Python binding at all, only SQLite's B-tree, index and foreign-key work. Run with
  all three indexes (the schema), with only the unique ``(workspace_id, message_id)`` index,
  with no secondary index at all (the table rebuilt without the unique constraint: plain
  ``INSERT``), with all three but every chunk in one transaction, and the import's path for a
  large load: one transaction that drops the two non-unique indexes, loads, creates them again.
- **Python executemany**: the importer's own insert (``insert_event_frame``: ``executemany`` of
  the 8 varying columns) with all indexes, in one transaction, and on the large-load path.

Each variant starts from a copy of the same prepared database (workspace, customers and
identities stored, ``events`` empty). Figures are wall-clock seconds and events/s of this
process; compare them with the import's rate in ``run.py`` measured in the same minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import sqlite3
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
from sqlalchemy import Connection

from clm.ingest import transactions as importer
from clm.store import workspaces as ws
from clm.store.bulk import EVENT_COLUMNS, insert_event_frame, sql_literal
from clm.store.engine import Database

_DEFERRED = ("ix_events_workspace_ts", "ix_events_identity_name_ts")


def _ingest_benchmark() -> ModuleType:
    path = Path(__file__).with_name("run.py")
    spec = importlib.util.spec_from_file_location("ingest_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(folder: Path, rows: int) -> tuple[Path, pl.DataFrame, dict[str, Any]]:
    """A database with the import's customers and identities stored, and the event columns
    the importer would insert (``_event_columns``), sorted as it sorts them."""
    parquet = folder / "transactions.parquet"
    _ingest_benchmark().write_transactions(parquet, rows, customers=max(rows // 10, 1))
    path = folder / "template.sqlite"
    db = Database.open(f"sqlite:///{path}")
    with db.transaction() as session:
        workspace_id = ws.create_workspace(session, "floor").id
    table = pl.read_parquet(parquet)
    frame = importer._transaction_frame(table, "customer_id", "date", "amount", None, None, None, 1)
    unique = frame.sort("_message_id").unique("_message_id", keep="first", maintain_order=True)
    identities = importer._user_identities(db, workspace_id, unique)
    columns = importer._event_columns("sqlite", unique, identities, None, None)
    constants = importer._constants("sqlite", workspace_id, "Order Completed", None,
                                    datetime.now(UTC))  # fmt: skip
    db.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, columns, constants


def _without_unique(connection: Connection) -> None:
    """``events`` rebuilt without its unique constraint: no index but the rowid."""
    sql = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE name = 'events'"
    ).scalar_one()
    connection.exec_driver_sql("DROP TABLE events")
    connection.exec_driver_sql(re.sub(r",\s*CONSTRAINT uq_event_message UNIQUE \([^)]*\)", "", sql))


def _c_insert_sql(connection: Connection, columns: pl.DataFrame, constants: dict[str, Any]) -> str:
    """Stage the varying columns in a temporary table (not timed); the timed statement."""
    names = columns.columns
    connection.exec_driver_sql(f"CREATE TEMP TABLE floor_rows ({', '.join(names)})")
    marks = ", ".join("?" for _ in names)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(f"INSERT INTO floor_rows VALUES ({marks})", columns.iter_rows())
    unique = connection.exec_driver_sql(
        "SELECT count(*) FROM pragma_index_list('events') WHERE \"unique\""
    ).scalar_one()
    conflict = " ON CONFLICT (workspace_id, message_id) DO NOTHING" if unique else ""
    values = ", ".join(c if c in names else sql_literal(constants[c]) for c in EVENT_COLUMNS)
    return (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT {values} "
        f"FROM floor_rows WHERE rowid > ? AND rowid <= ?{conflict}"
    )


def run_variant(
    template: Path,
    columns: pl.DataFrame,
    constants: dict[str, Any],
    chunk: int,
    *,
    c_level: bool,
    indexes: str,
) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, checkpointer thread included) to load
    ``columns`` into a fresh copy of ``template``. ``indexes``: ``all``, ``unique`` (the other
    two dropped beforehand), ``none`` (no unique constraint either), ``one`` (all indexes,
    every chunk in one transaction), or ``after``: the import's path for a large load, one
    transaction that drops the two non-unique indexes, loads every chunk and creates them
    again."""
    with tempfile.TemporaryDirectory(dir=template.parent) as tmp:
        path = Path(tmp) / "events.sqlite"
        shutil.copy(template, path)
        db = Database.open(f"sqlite:///{path}", run_migrations=False)
        checkpointer = db.start_checkpointer()
        with db.engine.connect() as connection:
            connection = connection.execution_options(clm_write=True)
            with connection.begin():
                connection.exec_driver_sql(
                    f"PRAGMA cache_size=-{importer._SQLITE_IMPORT_CACHE_KIB}"
                )
                create = (
                    connection.exec_driver_sql(
                        "SELECT sql FROM sqlite_master WHERE name IN (?, ?)", _DEFERRED
                    )
                    .scalars()
                    .all()
                )
                if indexes in ("unique", "none"):
                    for name in _DEFERRED:
                        connection.exec_driver_sql(f"DROP INDEX {name}")
                if indexes == "none":
                    _without_unique(connection)
                sql = _c_insert_sql(connection, columns, constants) if c_level else ""
            once = connection.begin() if indexes in ("after", "one") else None
            started, cpu = time.perf_counter(), time.process_time()
            if indexes == "after":
                for name in _DEFERRED:
                    connection.exec_driver_sql(f"DROP INDEX {name}")
            for start in range(0, columns.height, chunk):
                transaction = connection.begin() if once is None else nullcontext()
                with transaction:
                    if c_level:
                        connection.exec_driver_sql(sql, (start, start + chunk))
                    else:
                        insert_event_frame(connection, columns.slice(start, chunk), constants)
                if once is None and checkpointer is not None:
                    checkpointer.poke()
            if indexes == "after":
                for statement in create:
                    connection.exec_driver_sql(statement)
            if once is not None:
                once.commit()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            stored = connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
            connection.rollback()
        assert stored == columns.height, (stored, columns.height)
        db.stop_checkpointer(checkpointer)
        db.dispose()
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=250_000, help="rows per transaction")
    args = parser.parse_args()
    variants = [
        ("C: INSERT ... SELECT", "all 3 indexes", True, "all"),
        ("C: INSERT ... SELECT", "unique index only", True, "unique"),
        ("C: INSERT ... SELECT", "no secondary index", True, "none"),
        ("C: INSERT ... SELECT", "all 3, one transaction", True, "one"),
        ("C: INSERT ... SELECT", "unique, other 2 built after (one transaction)", True, "after"),
        ("Python executemany", "all 3 indexes", False, "all"),
        ("Python executemany", "all 3, one transaction", False, "one"),
        ("Python executemany", "unique, other 2 built after (one transaction)", False, "after"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        template, columns, constants = prepare(Path(tmp), args.rows)
        print(f"SQLite {sqlite3.sqlite_version}, {columns.height:,} rows, "
              f"{args.chunk:,} per transaction\n")  # fmt: skip
        print("| insert | events indexes | seconds | CPU s | events/s | load avg |")
        print("|---|---|---:|---:|---:|---:|")
        for how, label, c_level, indexes in variants:
            seconds, cpu = run_variant(
                template, columns, constants, args.chunk, c_level=c_level, indexes=indexes
            )
            print(
                f"| {how} | {label} | {seconds:.2f} | {cpu:.2f} | {columns.height / seconds:,.0f} "
                f"| {os.getloadavg()[0]:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
