"""Allocate primary keys ahead of a bulk insert, so rows can reference each other without a
round trip per row (``INSERT ... RETURNING`` one row at a time is what it replaces)."""

from __future__ import annotations

from sqlalchemy import Table, text
from sqlalchemy.orm import Session


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` fresh ids for ``table``.

    PostgreSQL draws them from the table's sequence. SQLite continues after the largest id,
    which is safe because write transactions there begin with ``BEGIN IMMEDIATE``: no other
    writer can insert until this transaction ends.
    """
    if count <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        )
        return [int(row[0]) for row in rows]
    sql = f"SELECT max(id) FROM {table.name}"  # noqa: S608 - a table of ours
    found = session.connection().exec_driver_sql(sql).scalar()
    start = int(found or 0)
    return list(range(start + 1, start + count + 1))
