"""A PostgreSQL writer that draws an event id now and commits its event later: the case an id
cursor must not skip (``clm.store.settled``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from clm.store import settled
from clm.store.engine import Database
from clm.store.models import Event


@contextmanager
def late_event(
    db: Database, workspace_id: int, template: str, **columns: Any
) -> Iterator[Callable[[], int]]:
    """Draw an event id from the sequence on a connection of its own, and yield the function
    that stores the event (a copy of the one with message id ``template``, with ``columns``)
    under that id and commits; until then every id drawn after it may commit first."""
    with db.session() as session:
        found = session.scalars(
            select(Event).where(Event.workspace_id == workspace_id, Event.message_id == template)
        ).one()
        row = {c.name: getattr(found, c.name) for c in Event.__table__.columns}
    with db.engine.connect() as late:
        drawn = late.execute(text("SELECT nextval(pg_get_serial_sequence('events', 'id'))"))
        row.update(columns, id=drawn.scalar_one())

        def commit() -> int:
            late.execute(insert(Event).values(**row))
            late.commit()
            return int(row["id"])

        yield commit
        late.rollback()


def settle_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers give up on an open writer after 0.2 s instead of 5 (a test holds it open)."""
    monkeypatch.setattr(settled, "SETTLE_SECONDS", 0.2)
