"""Enrolment by time and state: dates (a birthday, a renewal − 30 days), schedules, a health
state reached, and a customer entering a segment (stage, health, RFM segment, traits).

These triggers read where customers stand now rather than the event log, so each keeps its own
memory: the dates it already enrolled (``trigger_message_id``), the health snapshots it has
read (a cursor), the members a segment had at the last tick (an ``engage_config`` row).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks.journeys import (
    Candidate,
    active_playbooks,
    cursor,
    enroll,
    set_cursor,
)
from clm.engage.playbooks.schemas import PlaybookDefinition, Trigger
from clm.engage.playbooks.standing import segment_members
from clm.lifecycle.conditions import conditions_hold, describe
from clm.lifecycle.saved_segments import segment_named
from clm.store.engine import Database
from clm.store.models import Customer, EngageJourney, HealthSnapshot
from clm.store.settled import settled_top

log = logging.getLogger(__name__)
_STATE_TRIGGERS = ("date", "schedule", "health_changed", "segment_entered")


def enroll_calendar(db: Database, workspace_id: int, now: datetime) -> int:
    """Date triggers (a trait's date plus an offset, yearly or once) and schedules."""
    with db.session() as session:
        books = [
            (i, b)
            for i, b in active_playbooks(session, workspace_id)
            if b.trigger.type in _STATE_TRIGGERS
        ]
        if not books:
            return 0
        customers = session.execute(
            select(Customer.id, Customer.traits).where(
                Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)
            )
        ).all()
    today = now.date()
    total = 0
    for book_id, book in books:
        if book.trigger.type == "health_changed":
            total += _enroll_health(db, workspace_id, book_id, book, now)
            continue
        if book.trigger.type == "segment_entered":
            total += enroll_segment(db, workspace_id, book_id, book, now)
            continue
        candidates = []
        for cid, traits in customers:
            key = _calendar_key(book.trigger, dict(traits or {}), today)
            if key:
                candidates.append(Candidate(cid, int(now.timestamp()), key, key))
        with db.transaction() as session:
            seen = {
                (r[0], r[1])
                for r in session.execute(
                    select(EngageJourney.customer_id, EngageJourney.trigger_message_id).where(
                        EngageJourney.workspace_id == workspace_id,
                        EngageJourney.playbook_name == book.name,
                    )
                )
            }
            fresh = [c for c in candidates if (c.customer_id, c.message_id) not in seen]
            total += enroll(
                session,
                workspace_id,
                book_id,
                book.model_copy(update={"reentry": True}),
                fresh,
                now,
            )
    return total


def _calendar_key(trigger: Trigger, traits: dict[str, Any], today: date) -> str | None:
    if trigger.type == "schedule":
        period = today.toordinal() // trigger.every_days
        return (
            f"schedule:{period}"
            if conditions_hold(trigger.conditions, traits, None, None)
            else None
        )
    raw = traits.get(trigger.trait or "")
    try:
        when = date.fromisoformat(str(raw)[:10])
    except ValueError:
        return None
    target = today - timedelta(days=trigger.offset_days)
    hit = (when.month, when.day) == (target.month, target.day) if trigger.yearly else when == target
    return f"date:{trigger.trait}:{target.isoformat()}" if hit else None


def _enroll_health(
    db: Database, workspace_id: int, book_id: int, book: PlaybookDefinition, now: datetime
) -> int:
    consumer = f"health:{book.name}"
    # Only as far as every smaller id is committed (PostgreSQL commits ids out of order): a
    # snapshot committed later under the cursor would never enrol its customer.
    top = settled_top(db, "health_history", workspace_id=workspace_id)
    if top is None:  # a writer that may hold a smaller id is still open: the next tick
        return 0
    with db.session() as session:
        after = cursor(session, workspace_id, consumer)
        rows = session.execute(
            select(
                HealthSnapshot.id,
                HealthSnapshot.customer_id,
                HealthSnapshot.definition_id,
                HealthSnapshot.ts,
                HealthSnapshot.state,
            )
            .where(
                HealthSnapshot.workspace_id == workspace_id,
                HealthSnapshot.id > after,
                HealthSnapshot.id <= top,
            )
            .order_by(HealthSnapshot.id)
        ).all()
        candidates = []
        for row in rows:
            if row.state != book.trigger.to:
                continue
            before = session.scalar(
                select(HealthSnapshot.state)
                .where(
                    HealthSnapshot.definition_id == row.definition_id,
                    HealthSnapshot.customer_id == row.customer_id,
                    HealthSnapshot.ts < row.ts,
                )
                .order_by(HealthSnapshot.ts.desc())
                .limit(1)
            )
            if before != row.state:
                candidates.append(
                    Candidate(
                        row.customer_id,
                        row.ts,
                        f"health:{row.id}",
                        f"health {before} → {row.state}",
                    )
                )
    with db.transaction() as session:
        count = enroll(session, workspace_id, book_id, book, candidates, now)
        if rows:
            set_cursor(session, workspace_id, consumer, rows[-1].id)
    return count


def enroll_segment(
    db: Database, workspace_id: int, book_id: int, book: PlaybookDefinition, now: datetime
) -> int:
    """Enrol the customers who entered the trigger's segment since the last tick.

    The first evaluation only records who is in the segment: being there already when the
    playbook starts is not entering it (else a new playbook would write to a whole segment).
    """
    trigger = book.trigger
    conditions = trigger.conditions
    described = describe(conditions)
    if trigger.segment:
        saved = segment_named(db, workspace_id, trigger.segment)
        if saved is None:  # deleted since (deleting one in use is refused): nobody enters
            log.warning("playbook %s: no segment %r", book.name, trigger.segment)
            return 0
        conditions, described = saved, trigger.segment
    members = segment_members(db, workspace_id, conditions, now)
    with db.transaction() as session:
        before = repo.get_config(session, workspace_id, "segment", book.name)
        repo.put_config(session, workspace_id, "segment", book.name, {"members": sorted(members)})
        if before is None:
            return 0
        entered = sorted(members - set(before.get("members", [])))
        stamp, day = int(now.timestamp()), now.date().isoformat()
        candidates = [
            Candidate(c, stamp, f"segment:{book.name}:{c}:{day}", f"entered segment ({described})")
            for c in entered
        ]
        return enroll(session, workspace_id, book_id, book, candidates, now)
