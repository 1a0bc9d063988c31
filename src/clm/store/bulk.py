"""Append many events in one statement, below the ORM.

This is the hot path of ingestion and import: rows arrive as plain tuples (``EVENT_COLUMNS``
order, aware datetimes, dicts for JSON) and go straight to the driver's ``executemany``.
Duplicates of a stored ``message_id`` are skipped by the unique index, never raised.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import polars as pl
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
    """The text SQLAlchemy's SQLite DateTime stores, for an aware datetime, in UTC:
    ``YYYY-MM-DD HH:MM:SS.ffffff``. ``isoformat`` rather than ``strftime``: this runs several
    times for each event ingested, and it costs half as much."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def json_text(value: Any) -> str | None:
    if value is None:
        return None
    if not value and isinstance(value, dict):
        return "{}"  # most events carry no traits and many no properties
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def sqlite_datetimes() -> Callable[[datetime | None], str | None]:
    """``sqlite_datetime`` (``None`` stays ``None``) that formats each distinct value once: the
    rows of a batch share their receipt time, and often their timestamps."""
    texts: dict[datetime, str] = {}

    def when(value: datetime | None) -> str | None:
        if value is None:
            return None
        found = texts.get(value)
        if found is None:
            found = texts[value] = sqlite_datetime(value)
        return found

    return when


def _sqlite_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    when = sqlite_datetimes()
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
        return _insert_sqlite_multirow(connection, values)
    sql = f"INSERT INTO events ({names}) VALUES ({marks}) {conflict}"  # noqa: S608 - constants
    result = connection.exec_driver_sql(sql, list(values))
    return max(int(result.rowcount), 0)


_ROWS_PER_STATEMENT = 100  # 2,000 parameters: SQLite allows 32,766


def _insert_sqlite_multirow(connection: Connection, values: Sequence[Sequence[Any]]) -> int:
    """Many rows per ``INSERT ... VALUES (...), (...)``: SQLite then runs one step, with the
    GIL released, for a hundred rows, where ``executemany`` released and re-took it for each
    row. In a server whose event loop is parsing the next requests, every re-take could wait
    for that thread's switch interval: the writer thread lost more time there than it worked
    (benchmarks/ingest/README.md)."""
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    stored = 0
    try:
        for start in range(0, len(values), _ROWS_PER_STATEMENT):
            chunk = values[start : start + _ROWS_PER_STATEMENT]
            cursor.execute(_sqlite_multirow_sql(len(chunk)), [v for row in chunk for v in row])
            stored += max(cursor.rowcount, 0)
    finally:
        cursor.close()
    return stored


@cache
def _sqlite_multirow_sql(rows: int) -> str:
    marks = "(" + ", ".join("?" for _ in EVENT_COLUMNS) + ")"
    return (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES "  # noqa: S608 - constants
        f"{', '.join(marks for _ in range(rows))} "
        "ON CONFLICT (workspace_id, message_id) DO NOTHING"
    )


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


def sql_literal(value: str | int | float | None) -> str:
    """A constant as SQL text, for statements that repeat it on every row of a bulk insert.

    Strings are quoted by doubling single quotes (standard SQL; neither engine reads backslash
    escapes in such literals); a NUL character, which SQLite's parser would cut at, is refused.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError("booleans are not stored as event constants")
    if isinstance(value, int | float):
        return repr(value)
    if "\x00" in value:
        raise ValueError("text with a NUL character cannot be stored")
    return "'" + value.replace("'", "''") + "'"


def timestamp_text(column: pl.Expr, dialect: str) -> pl.Expr:
    """Aware datetimes (UTC) as the text each driver stores for ``UtcDateTime``, column-wise."""
    if dialect == "postgresql":
        return column.dt.strftime("%Y-%m-%d %H:%M:%S.%6f+00")
    return column.dt.strftime("%Y-%m-%d %H:%M:%S.%6f")


def insert_event_frame(
    connection: Connection, frame: pl.DataFrame, constants: Mapping[str, Any]
) -> int:
    """Insert events given column-wise, skipping stored message ids; returns how many were new.

    ``frame`` holds the columns that vary, driver-ready (timestamps from ``timestamp_text``,
    JSON as text); ``constants`` every other column of ``EVENT_COLUMNS``. SQLite binds only the
    varying columns (binding is the Python cost of each row); PostgreSQL gets the whole chunk
    as one CSV ``COPY`` written by polars, with no Python object per row.
    """
    if frame.is_empty():
        return 0
    missing = set(EVENT_COLUMNS) - set(frame.columns) - set(constants)
    if missing:
        raise ValueError(f"no value for event columns {sorted(missing)}")
    if connection.dialect.name == "postgresql":
        full = frame.with_columns(
            pl.lit(value).alias(name) for name, value in constants.items() if name not in frame
        ).select(EVENT_COLUMNS)
        return _copy_postgres_csv(connection, full)
    position = {name: i + 1 for i, name in enumerate(frame.columns)}
    values = ", ".join(
        f"?{position[c]}" if c in position else sql_literal(constants[c]) for c in EVENT_COLUMNS
    )
    sql = (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({values}) "  # noqa: S608
        "ON CONFLICT (workspace_id, message_id) DO NOTHING"
    )
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    before = connection.connection.driver_connection.total_changes  # type: ignore[union-attr]
    cursor.executemany(sql, frame.iter_rows(buffer_size=4096))
    after = connection.connection.driver_connection.total_changes  # type: ignore[union-attr]
    cursor.close()
    return int(after - before)


def _copy_postgres_csv(connection: Connection, frame: pl.DataFrame) -> int:
    """COPY into a staging table, then ``INSERT ... ON CONFLICT DO NOTHING``; or, when no stored
    event has a message id in the chunk's range, straight into ``events`` (below)."""
    if _copy_postgres_direct(connection, frame):
        return frame.height
    names = ", ".join(EVENT_COLUMNS)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS events_incoming ON COMMIT DELETE ROWS AS "  # noqa: S608
        f"SELECT {names} FROM events WITH NO DATA"
    )
    copy_frame(connection, "events_incoming", frame)
    result = connection.exec_driver_sql(
        f"INSERT INTO events ({names}) SELECT {names} FROM events_incoming "  # noqa: S608
        "ON CONFLICT (workspace_id, message_id) DO NOTHING"
    )
    connection.exec_driver_sql("TRUNCATE events_incoming")
    return max(int(result.rowcount), 0)


def stored_in_range(connection: Connection, workspace_id: int, message_ids: pl.Series) -> bool:
    """Whether the workspace has a stored event whose message id lies between the least and
    the greatest of ``message_ids``: one probe of the unique index, which tells a new file
    from one imported again."""
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    found = connection.exec_driver_sql(
        f"SELECT EXISTS (SELECT 1 FROM events WHERE workspace_id = {mark} "  # noqa: S608
        f"AND message_id BETWEEN {mark} AND {mark})",
        (workspace_id, message_ids.min(), message_ids.max()),
    ).scalar_one()
    return bool(found)


def _copy_postgres_direct(connection: Connection, frame: pl.DataFrame) -> bool:
    """COPY a chunk straight into ``events`` when none of its message ids can be stored yet:
    the staging table's COPY and scan cost about a fifth of the server's CPU for a new file.

    One index range probe decides (the workspace's stored ids between the chunk's least and
    greatest). The unique index stays the arbiter: if a stored id turns up after all (another
    writer, or a collation that orders the range differently), the COPY fails, its savepoint
    is rolled back and the caller takes the staging path, which skips the duplicates.
    """
    from psycopg.errors import UniqueViolation  # PostgreSQL only: the driver's own error

    workspaces = frame["workspace_id"].unique()
    if len(workspaces) != 1:
        return False
    if stored_in_range(connection, int(workspaces[0]), frame["message_id"]):
        return False
    try:
        with connection.begin_nested():
            copy_frame(connection, "events", frame)
    except UniqueViolation:
        return False
    return True


def copy_frame(connection: Connection, table: str, frame: pl.DataFrame) -> None:
    """PostgreSQL ``COPY`` of a whole frame as CSV (strings quoted, nulls empty), in 64 KiB
    writes."""
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, quote_style="non_numeric")
    data = buffer.getbuffer()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    sql = f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)"
    with cursor.copy(sql) as copy:
        for start in range(0, len(data), 1 << 16):
            copy.write(data[start : start + (1 << 16)])


def insert_frame(connection: Connection, table: str, frame: pl.DataFrame) -> None:
    """Plain rows given column-wise (driver-ready, as for ``insert_event_frame``) into
    ``table``: ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""
    if frame.is_empty():
        return
    if connection.dialect.name == "postgresql":
        copy_frame(connection, table, frame)
        return
    marks = ", ".join("?" for _ in frame.columns)
    sql = f"INSERT INTO {table} ({', '.join(frame.columns)}) VALUES ({marks})"  # noqa: S608
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(sql, frame.iter_rows(buffer_size=4096))
    cursor.close()


def select_in(
    connection: Connection,
    columns: str,
    table: str,
    equal: Sequence[tuple[str, Any]],
    column: str,
    values: Sequence[Any],
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE a = .. AND column IN values`` as one statement with the
    values as one parameter (a JSON array read by ``json_each`` on SQLite, an array on
    PostgreSQL): no statement compiled per call, no limit on how many values.

    ``columns``, ``table`` and the column names are constants of the caller, never input.
    """
    if not values:
        return []
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    where = [f"{name} = {mark}" for name, _ in equal]
    if postgres:
        where.append(f"{column} = ANY({mark})")
        listed: Any = list(values)
    else:
        where.append(f"{column} IN (SELECT value FROM json_each({mark}))")  # noqa: S608
        listed = orjson.dumps(list(values)).decode()
    sql = f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)}"  # noqa: S608 - constants
    result = connection.exec_driver_sql(sql, (*(value for _, value in equal), listed))
    return [tuple(row) for row in result]


def refresh_statistics(connection: Connection) -> None:
    """Tell the query planner what a bulk load changed (PostgreSQL's standard advice after one).

    Without fresh statistics PostgreSQL may take a just-filled table for an empty one and scan
    a whole workspace where one index probe would do.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE events, identities, customers")
    else:
        connection.exec_driver_sql("ANALYZE")


def _converted(
    row: Sequence[Any], converters: list[tuple[int, Callable[[Any], Any]]]
) -> tuple[Any, ...]:
    values = list(row)
    for i, convert in converters:
        value = values[i]
        if value is not None:
            values[i] = convert(value)
    return tuple(values)


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
    converters: list[tuple[int, Callable[[Any], Any]]] = [
        (i, sqlite_datetime if sqlite and c in datetimes else json_text)
        for i, c in enumerate(columns)
        if (sqlite and c in datetimes) or c in jsons
    ]
    values = [_converted(row, converters) if converters else tuple(row) for row in rows]
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
