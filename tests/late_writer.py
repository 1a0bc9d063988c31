"""A PostgreSQL writer that draws a row id now and commits its row later: the case an id
cursor must not skip (``clm.store.settled``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

import pytest
from sqlalchemy import ColumnElement, Table, insert, select, text

from clm.store import settled
from clm.store.engine import Database
from clm.store.models import Base, Event


@contextmanager
def late_row(
    db: Database, model: type[Base], template: ColumnElement[bool], **columns: Any
) -> Iterator[Callable[[], int]]:
    """Draw an id from ``model``'s sequence on a connection of its own, and yield the function
    that stores the row (a copy of the one ``template`` selects, with ``columns``) under that
    id, commits and returns the id; until then every id drawn after it may commit first."""
    table = cast(Table, model.__table__)
    with db.session() as session:
        found = session.scalars(select(model).where(template)).one()
        row = {c.name: getattr(found, c.name) for c in table.columns}
    with db.engine.connect() as late:
        sequence = text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id'))")
        row.update(columns, id=late.execute(sequence).scalar_one())

        def commit() -> int:
            late.execute(insert(table).values(**row))
            late.commit()
            return int(row["id"])

        yield commit
        late.rollback()


def late_event(
    db: Database, workspace_id: int, template: str, **columns: Any
) -> AbstractContextManager[Callable[[], int]]:
    """``late_row`` of an event, a copy of the one with message id ``template``."""
    where = (Event.workspace_id == workspace_id) & (Event.message_id == template)
    return late_row(db, Event, where, **columns)


def settle_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers give up on an open writer after 0.2 s instead of 5 (a test holds it open)."""
    monkeypatch.setattr(settled, "SETTLE_SECONDS", 0.2)
