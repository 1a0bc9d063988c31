"""Bulk writes of journeys, their history and outbox messages, straight to the driver.

A playbook tick writes a few rows per customer; SQLAlchemy's per-value bind processing cost
more than the statements themselves. Values are converted here once per batch, the way the
column types would (aware datetimes to SQLite's UTC text, dicts to JSON text), and go to the
driver's ``executemany``, as ingestion does for events (``clm.store.bulk``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from clm.store.bulk import json_text, sqlite_datetime

_CHUNK = 5_000


def _converter(dialect: str) -> Any:
    texts: dict[datetime, str] = {}  # a batch shares its timestamps ("now")

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            if dialect != "sqlite":
                return value
            found = texts.get(value)
            if found is None:
                found = texts[value] = sqlite_datetime(value)
            return found
        if isinstance(value, dict | list):
            return json_text(value)
        return value

    return convert


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
    convert = _converter(dialect)
    connection = session.connection()
    for start in range(0, len(rows), _CHUNK):
        params = [tuple(convert(r[c]) for c in columns) for r in rows[start : start + _CHUNK]]
        connection.exec_driver_sql(sql, params)


def update_by_id(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE each row's columns where ``id`` matches (all rows with the same keys)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    columns = [c for c in rows[0] if c != "id"]
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    assignments = ", ".join(f"{c} = {mark}" for c in columns)
    sql = f"UPDATE {table.name} SET {assignments} WHERE id = {mark}"  # noqa: S608
    convert = _converter(dialect)
    connection = session.connection()
    for start in range(0, len(rows), _CHUNK):
        params = [
            (*(convert(r[c]) for c in columns), r["id"]) for r in rows[start : start + _CHUNK]
        ]
        connection.exec_driver_sql(sql, params)
