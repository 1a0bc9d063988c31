"""Append many events in one statement, below the ORM.

This is the hot path of ingestion and import: rows arrive as plain tuples (``EVENT_COLUMNS``
order, aware datetimes, dicts for JSON) and go straight to the driver's ``executemany``.
Duplicates of a stored ``message_id`` are skipped by the unique index, never raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection

EVENT_COLUMNS = (
    "workspace_id",
    "identity_id",
    "message_id",
    "type",
    "name",
    "user_id",
    "anonymous_id",
    "timestamp",
    "ts",
    "received_at",
    "sent_at",
    "original_timestamp",
    "channel",
    "campaign",
    "source",
    "revenue",
    "currency",
    "properties",
    "context",
    "traits",
)
_JSONS = frozenset(
    i for i, c in enumerate(EVENT_COLUMNS) if c in ("properties", "context", "traits")
)


def sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores, for an aware datetime, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    texts: dict[datetime, str] = {}  # a batch shares its receipt time, often its timestamps

    def when(value: datetime | None) -> str | None:
        if value is None:
            return None
        found = texts.get(value)
        if found is None:
            found = texts[value] = sqlite_datetime(value)
        return found

    # Spelled out column by column: this runs for every event ingested.
    return [
        (
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], when(r[7]), r[8], when(r[9]),
            when(r[10]), when(r[11]), r[12], r[13], r[14], r[15], r[16],
            json_text(r[17]), json_text(r[18]), json_text(r[19]),
        )
        for r in rows
    ]  # fmt: skip


def _postgres_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [(*r[:17], json_text(r[17]), json_text(r[18]), json_text(r[19])) for r in rows]


def prepare_rows(dialect: str, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows of Python values (aware datetimes, dicts) as the driver takes them."""
    return _postgres_rows(rows) if dialect == "postgresql" else _sqlite_rows(rows)


def insert_events(connection: Connection, rows: Sequence[Sequence[Any]]) -> int:
    """Insert rows, skipping stored message ids; returns how many were new."""
    return insert_prepared(connection, prepare_rows(connection.dialect.name, rows))


def insert_prepared(connection: Connection, values: Sequence[Sequence[Any]]) -> int:
    """Insert driver-ready rows (``prepare_rows``' output, or the same built in bulk):
    datetimes as SQLite's text or PostgreSQL-readable values, JSON as text."""
    if not values:
        return 0
    names = ", ".join(EVENT_COLUMNS)
    conflict = "ON CONFLICT (workspace_id, message_id) DO NOTHING"
    if connection.dialect.name == "postgresql":
        if len(values) > 50:  # COPY beats row-by-row executemany beyond a few dozen rows
            return _copy_postgres(connection, values)
        marks = ", ".join("%s::jsonb" if i in _JSONS else "%s" for i in range(len(EVENT_COLUMNS)))
    else:
        marks = ", ".join("?" for _ in EVENT_COLUMNS)
    sql = f"INSERT INTO events ({names}) VALUES ({marks}) {conflict}"  # noqa: S608 - constants
    result = connection.exec_driver_sql(sql, list(values))
    return max(int(result.rowcount), 0)


def _copy_postgres(connection: Connection, values: Sequence[Sequence[Any]]) -> int:
    """COPY into a temporary table, then one INSERT ... ON CONFLICT: PostgreSQL's fast path."""
    names = ", ".join(EVENT_COLUMNS)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS events_incoming ON COMMIT DELETE ROWS AS "  # noqa: S608
        f"SELECT {names} FROM events WITH NO DATA"
    )
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY events_incoming ({names}) FROM STDIN") as copy:
        for row in values:
            copy.write_row(row)
    result = connection.exec_driver_sql(
        f"INSERT INTO events ({names}) SELECT {names} FROM events_incoming "  # noqa: S608
        "ON CONFLICT (workspace_id, message_id) DO NOTHING"
    )
    connection.exec_driver_sql("TRUNCATE events_incoming")
    return max(int(result.rowcount), 0)


def refresh_statistics(connection: Connection) -> None:
    """Tell the query planner what a bulk load changed (PostgreSQL's standard advice after one).

    Without fresh statistics PostgreSQL may take a just-filled table for an empty one and scan
    a whole workspace where one index probe would do.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE events, identities, customers")
    else:
        connection.exec_driver_sql("ANALYZE")


def insert_plain(
    connection: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    datetimes: frozenset[str] = frozenset(),
    jsons: frozenset[str] = frozenset(),
) -> None:
    """``executemany`` of plain tuples into ``table``, below SQLAlchemy's per-value processing.

    For the identity tables that ingestion fills in bulk; ``datetimes`` (aware) and ``jsons``
    name the columns to convert the way the ORM types would.
    """
    if not rows:
        return
    sqlite = connection.dialect.name != "postgresql"
    converters = [
        (lambda v: None if v is None else sqlite_datetime(v)) if sqlite and c in datetimes
        else json_text if c in jsons
        else None
        for c in columns
    ]  # fmt: skip
    values = [
        tuple(
            v if convert is None else convert(v) for v, convert in zip(row, converters, strict=True)
        )
        for row in rows
    ]
    if not sqlite and len(values) > 50:  # PostgreSQL's COPY: one round trip for all rows
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        return
    if sqlite:
        marks = ", ".join("?" for _ in columns)
    else:
        marks = ", ".join("%s::jsonb" if c in jsons else "%s" for c in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - constants
    connection.exec_driver_sql(sql, values)
