"""Journeys in flight, one playbook at a time: who is at which step, waiting until when, and
which journeys failed with what error. Paged and ordered in the database (a playbook may have
hundreds of thousands of journeys); only the page's rows are looked up further.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clm.engage.playbooks.schemas import PlaybookDefinition
from clm.errors import NotFound
from clm.store.engine import Database
from clm.store.models import Customer, EngageJourney, EngageJourneyLog, EngagePlaybook

# "in_flight" is every journey not yet over: running, waiting for an event, or stopped by an
# error (a failed journey waits for a person, so it stays in view until someone acts).
JourneyFilter = Literal["in_flight", "active", "waiting", "failed", "completed", "exited", "all"]
_STATES: dict[str, tuple[str, ...] | None] = {
    "in_flight": ("active", "waiting", "failed"),
    "active": ("active",),
    "waiting": ("waiting",),
    "failed": ("failed",),
    "completed": ("completed",),
    "exited": ("exited",),
    "all": None,
}


class JourneyRow(BaseModel):
    """One customer's journey: where they are and what happens next."""

    id: int
    customer_id: int
    customer: str  # name, else email, else user id: who this is, for people
    version: int
    arm: str  # treatment | control (the holdout, who get no messages)
    variant: str | None
    state: str
    step: str | None  # the step id it is at (None once past the last step)
    step_number: int | None  # 1-based, for "step 2 of 4"
    steps: int
    wake_at: datetime | None  # a wait ends then (or a wait_until times out)
    waiting_for: str | None  # the event a wait_until step waits for
    error: str | None  # the error a failed journey stopped with
    enrolled_at: datetime
    updated_at: datetime


class JourneyPage(BaseModel):
    playbook: str
    state: str
    total: int
    page: int
    per_page: int
    counts: dict[str, int]  # journeys per state, all versions
    items: list[JourneyRow]


def journeys_in_flight(
    db: Database,
    workspace_id: int,
    name: str,
    *,
    state: JourneyFilter = "in_flight",
    page: int = 1,
    per_page: int = 50,
) -> JourneyPage:
    """A page of one playbook's journeys in ``state``, the next to wake first (then the
    newest), failed ones by when they failed."""
    with db.session() as session:
        books = {
            b.id: b
            for b in session.scalars(
                select(EngagePlaybook).where(
                    EngagePlaybook.workspace_id == workspace_id, EngagePlaybook.name == name
                )
            )
        }
        if not books:
            raise NotFound(f"No playbook {name!r}")
        mine = (EngageJourney.workspace_id == workspace_id, EngageJourney.playbook_name == name)
        counts = {
            str(s): int(n)
            for s, n in session.execute(
                select(EngageJourney.state, func.count()).where(*mine).group_by(EngageJourney.state)
            )
        }
        wanted = _STATES[state]
        total = sum(n for s, n in counts.items() if wanted is None or s in wanted)
        query = select(EngageJourney).where(*mine)
        if wanted is not None:
            query = query.where(EngageJourney.state.in_(wanted))
        # Waits ending soonest first (what happens next), then the most recently moved.
        query = query.order_by(
            EngageJourney.wake_at.is_(None),
            EngageJourney.wake_at,
            EngageJourney.updated_at.desc(),
            EngageJourney.id.desc(),
        )
        rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
        errors = _last_errors(session, [j.id for j in rows if j.state == "failed"])
        people = {
            c.id: c
            for c in session.scalars(
                select(Customer).where(
                    Customer.workspace_id == workspace_id,
                    Customer.id.in_([j.customer_id for j in rows] or [0]),
                )
            )
        }
        definitions = {i: PlaybookDefinition.model_validate(b.definition) for i, b in books.items()}
        items = []
        for j in rows:
            definition = definitions.get(j.playbook_id)
            steps = len(definition.steps) if definition else 0
            at = definition.steps[j.step].id if definition and j.step < steps else None
            items.append(
                JourneyRow(
                    id=j.id,
                    customer_id=j.customer_id,
                    customer=_who(people.get(j.customer_id), j.customer_id),
                    version=books[j.playbook_id].version if j.playbook_id in books else 0,
                    arm=j.arm,
                    variant=j.variant,
                    state=j.state,
                    step=at,
                    step_number=j.step + 1 if at is not None else None,
                    steps=steps,
                    wake_at=j.wake_at if j.state in ("active", "waiting") else None,
                    waiting_for=j.wait_event if j.state == "waiting" else None,
                    error=errors.get(j.id),
                    enrolled_at=j.enrolled_at,
                    updated_at=j.updated_at,
                )
            )
    return JourneyPage(
        playbook=name,
        state=state,
        total=total,
        page=page,
        per_page=per_page,
        counts=counts,
        items=items,
    )


def _last_errors(session: Session, journey_ids: list[int]) -> dict[int, str]:
    """The latest ``error`` entry of each failed journey on the page (its step and message)."""
    if not journey_ids:
        return {}
    found: dict[int, str] = {}
    rows = session.execute(
        select(EngageJourneyLog.journey_id, EngageJourneyLog.step, EngageJourneyLog.detail)
        .where(EngageJourneyLog.journey_id.in_(journey_ids), EngageJourneyLog.action == "error")
        .order_by(EngageJourneyLog.id)
    )
    for journey_id, step, detail in rows:
        found[int(journey_id)] = f"{step}: {detail}" if step and step != "-" else str(detail)
    return found


def _who(customer: Customer | None, customer_id: int) -> str:
    if customer is None:
        return f"#{customer_id}"
    traits = customer.traits if isinstance(customer.traits, dict) else {}
    name = traits.get("name") or " ".join(
        str(traits[k]) for k in ("first_name", "last_name") if traits.get(k)
    )
    return str(name or customer.email or customer.user_id or f"#{customer_id}")
