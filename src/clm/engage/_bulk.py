"""Bulk writes of journeys, their history and outbox messages, straight to the driver.

A playbook tick writes a few rows per customer; SQLAlchemy's per-value bind processing cost
more than the statements themselves. Values are converted here once per batch, the way the
column types would (aware datetimes to SQLite's UTC text, dicts to JSON text), and go to the
driver's ``executemany``, as ingestion does for events (``clm.store.bulk``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

from clm.store.bulk import json_text, sqlite_datetimes
from clm.store.models import UtcDateTime

_CHUNK = 5_000


def _converters(table: Table, columns: Sequence[str], dialect: str) -> list[tuple[int, Any]]:
    """(position, function) for the columns whose values the driver cannot take as they are."""
    when = sqlite_datetimes()  # a batch shares its timestamps ("now"): each formatted once
    found: list[tuple[int, Any]] = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, UtcDateTime):
            if dialect == "sqlite":
                found.append((i, when))
        elif isinstance(kind, JSON):
            found.append((i, json_text))
    return found


def _params(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], convert: list[tuple[int, Any]]
) -> list[tuple[Any, ...]]:
    pick = itemgetter(*columns)
    if not convert:
        return [pick(r) if len(columns) > 1 else (pick(r),) for r in rows]
    params = []
    for r in rows:
        values = list(pick(r)) if len(columns) > 1 else [pick(r)]
        for i, fn in convert:
            if values[i] is not None:
                values[i] = fn(values[i])
        params.append(tuple(values))
    return params


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a batch builds its many small objects: the
    collector's passes over a large heap cost a tenth of a tick (nothing here makes cycles).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _marks(session: Session, count: int) -> str:
    style = session.get_bind().dialect.paramstyle
    return ", ".join(["?" if style == "qmark" else "%s"] * count)


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    skip_conflicts_on: Sequence[str] = (),
) -> None:
    """INSERT every row (all with the same keys); duplicates of ``skip_conflicts_on`` skipped."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    columns = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({_marks(session, len(columns))})"  # noqa: S608
    )
    if skip_conflicts_on:
        sql += f" ON CONFLICT ({', '.join(skip_conflicts_on)}) DO NOTHING"
    convert = _converters(table, columns, dialect)
    connection = session.connection()
    for start in range(0, len(rows), _CHUNK):
        connection.exec_driver_sql(sql, _params(rows[start : start + _CHUNK], columns, convert))


def update_by_id(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE each row's columns where ``id`` matches (all rows with the same keys)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    columns = [c for c in rows[0] if c != "id"]
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    assignments = ", ".join(f"{c} = {mark}" for c in columns)
    sql = f"UPDATE {table.name} SET {assignments} WHERE id = {mark}"  # noqa: S608
    columns.append("id")
    convert = _converters(table, columns, dialect)
    connection = session.connection()
    for start in range(0, len(rows), _CHUNK):
        connection.exec_driver_sql(sql, _params(rows[start : start + _CHUNK], columns, convert))
