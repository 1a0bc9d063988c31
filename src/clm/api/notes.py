"""Frontline notes under ``/api/v1``: staff add a note and a 1-5 rating to a customer (the
``support`` permission) and read them (``read``). Each note is an event on the customer's
timeline and a health factor (``clm.engage.notes``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from clm.api.deps import DatabaseDep, Reader, Support, workspace_id
from clm.api.routing import ClmRoute
from clm.engage.notes import NoteCreate, NotePublic, add_note, list_notes
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1", tags=["notes"], route_class=ClmRoute)


@router.post("/customers/{customer_id}/notes", status_code=status.HTTP_201_CREATED)
def post_note(customer_id: RowId, body: NoteCreate, db: DatabaseDep, key: Support) -> NotePublic:
    """Add a note (and optionally a 1-5 rating: 5 very happy, 1 very unhappy)."""
    return add_note(db, workspace_id(key), customer_id, body)


@router.get("/customers/{customer_id}/notes")
def get_notes(
    customer_id: RowId,
    db: DatabaseDep,
    key: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[NotePublic]:
    """A customer's notes, newest first."""
    return list_notes(db, workspace_id(key), customer_id, limit)
