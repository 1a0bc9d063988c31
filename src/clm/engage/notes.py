"""Frontline notes: what staff learn about a customer, written into the event log.

A note is an event CLM writes on the staff member's behalf (``track``, name ``Frontline Note``,
channel ``system``, properties ``text``, ``rating`` (1-5 or null) and ``author``): it is on
the customer's timeline, exported and erased like any event, never a touchpoint (CLM's own
channel), and read by the health scorecard's ``frontline`` factor (the latest rating, its weight
halving every 90 days by default). Notes are append-only, like the log: a correction is a new
note.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from clm.engage.eventlog import track, write
from clm.errors import FieldError, ValidationError
from clm.store import customers as repo
from clm.store.engine import Database
from clm.store.own_events import OWN_CHANNEL

NOTE_EVENT = "Frontline Note"
_CLOCK_SKEW = timedelta(minutes=5)

__all__ = ["NOTE_EVENT", "NoteCreate", "NotePublic", "add_note", "list_notes"]


class NoteCreate(BaseModel):
    """A note to add: the text, an optional 1-5 rating of how the customer feels (5: very
    happy), who wrote it, and when (default now; never in the future)."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=5_000)]
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    author: Annotated[str, Field(min_length=1, max_length=200)]
    at: AwareDatetime | None = None

    @field_validator("text", "author")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class NotePublic(BaseModel):
    id: str  # the event's message id
    customer_id: int
    at: datetime
    text: str
    rating: int | None
    author: str


def add_note(db: Database, workspace_id: int, customer_id: int, note: NoteCreate) -> NotePublic:
    """Write a note about a customer of this workspace (NotFound for anyone else's)."""
    when = note.at or datetime.now(UTC)
    if when > datetime.now(UTC) + _CLOCK_SKEW:
        raise ValidationError(
            "A note cannot be dated in the future", [FieldError(("at",), "is in the future")]
        )
    with db.session() as session:
        customer = repo.get_customer(session, workspace_id, customer_id)
    anonymous = next((i.value for i in customer.identities if i.kind == "anonymous_id"), None)
    profile = {"user_id": customer.user_id, "anonymous_id": anonymous}
    properties = {"text": note.text, "rating": note.rating, "author": note.author}
    message_id = f"note-{uuid.uuid4().hex}"
    message = track(profile, NOTE_EVENT, message_id, properties, when, channel=OWN_CHANNEL)
    if message is None:
        raise ValidationError(
            "This customer has no user id or anonymous id to attach a note to",
            [FieldError(("customer_id",), "has no identifier")],
        )
    write(db, workspace_id, [message])
    return NotePublic(
        id=str(message["messageId"]),
        customer_id=customer.id,
        at=when,
        text=note.text,
        rating=note.rating,
        author=note.author,
    )


def list_notes(
    db: Database, workspace_id: int, customer_id: int, limit: int = 100
) -> list[NotePublic]:
    """A customer's notes, newest first."""
    with db.session() as session:
        customer = repo.get_customer(session, workspace_id, customer_id)
        where = repo.EventFilter(customer.id, "track", NOTE_EVENT)
        events, after = [], None
        while True:
            page = repo.list_events(session, workspace_id, where, after=after, limit=repo.MAX_PAGE)
            events.extend(page.items)
            if page.next_after is None:
                break
            after = page.next_after
    notes = [
        NotePublic(
            id=e.message_id,
            customer_id=customer.id,
            at=e.timestamp,
            text=str(e.properties.get("text", "")),
            rating=e.properties.get("rating"),
            author=str(e.properties.get("author", "")),
        )
        for e in events
        if e.channel == OWN_CHANNEL  # only CLM writes notes: a client's look-alike is not one
    ]
    notes.sort(key=lambda n: (n.at, n.id), reverse=True)
    return notes[:limit]
