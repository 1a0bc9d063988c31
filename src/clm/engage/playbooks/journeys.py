"""The playbook engine: enrol customers when a trigger fires, walk them through the steps.

``enroll_from_events`` reads the event log after a cursor (stage changes, any event, and the
events journeys wait for); ``journey_calendar`` handles dates, schedules, health and segments;
``advance`` runs every due journey until it waits or ends, in batches, writing the sends
(through the guardrails, into the outbox), tasks, step history and journey state in one
transaction per batch. Holdout and A/B assignment hash (playbook, customer): stable and
reproducible. ``tick`` does all three.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from clm.engage._bulk import insert_rows, paused_gc
from clm.engage.playbooks.schemas import PlaybookDefinition, Trigger
from clm.engage.schemas import SendRequest
from clm.store.engine import Database
from clm.store.ids import allocate_ids
from clm.store.models import (
    EngageCursor,
    EngageJourney,
    EngageJourneyLog,
    EngagePlaybook,
    table_of,
)
from clm.store.settled import settled_top

log = logging.getLogger("clm.engage.journeys")
SCAN = 50_000
BATCH = 5_000


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def cursor(session: Session, workspace_id: int, consumer: str) -> int:
    value = session.scalar(
        select(EngageCursor.last_event_id).where(
            EngageCursor.workspace_id == workspace_id, EngageCursor.consumer == consumer
        )
    )
    return int(value or 0)


def set_cursor(session: Session, workspace_id: int, consumer: str, value: int) -> None:
    row = session.scalar(
        select(EngageCursor).where(
            EngageCursor.workspace_id == workspace_id, EngageCursor.consumer == consumer
        )
    )
    if row is None:
        session.add(EngageCursor(workspace_id=workspace_id, consumer=consumer, last_event_id=value))
    else:
        row.last_event_id = value


def active_playbooks(session: Session, workspace_id: int) -> list[tuple[int, PlaybookDefinition]]:
    rows = session.execute(
        select(EngagePlaybook.id, EngagePlaybook.definition).where(
            EngagePlaybook.workspace_id == workspace_id, EngagePlaybook.status == "active"
        )
    )
    books = []
    for r in rows:
        try:
            books.append((r.id, PlaybookDefinition.model_validate(r.definition)))
        except ValueError:  # stored before a rule it now breaks: enrols nobody until fixed
            log.error(
                "stored playbook no longer valid",
                extra={"workspace_id": workspace_id, "playbook_id": r.id},
                exc_info=True,
            )
    return books


def _matches(trigger: Trigger, name: str, props: dict[str, Any]) -> bool:
    if trigger.type == "stage_changed":
        to = props.get("to_stage", props.get("to"))
        source = props.get("from_stage", props.get("from"))
        if trigger.to is not None and to != trigger.to:
            return False
        if trigger.from_ is not None and source != trigger.from_:
            return False
    return all(props.get(k) == v for k, v in trigger.where.items())


@dataclass
class Candidate:
    customer_id: int
    ts: int
    message_id: str
    why: str


def enroll(
    session: Session,
    workspace_id: int,
    playbook_id: int,
    book: PlaybookDefinition,
    candidates: Sequence[Candidate],
    now: datetime,
) -> int:
    """Start journeys (or hold customers out) for the candidates that may enter."""
    ids = sorted({c.customer_id for c in candidates})
    busy: set[int] = set()
    for start in range(0, len(ids), 1_000):
        query = select(EngageJourney.customer_id).where(
            EngageJourney.workspace_id == workspace_id,
            EngageJourney.playbook_name == book.name,
            EngageJourney.customer_id.in_(ids[start : start + 1_000]),
        )
        if book.reentry:
            query = query.where(EngageJourney.state.in_(("active", "waiting")))
        busy.update(session.scalars(query))
    fresh: dict[int, Candidate] = {}
    for c in candidates:
        if c.customer_id not in busy and c.customer_id not in fresh:
            fresh[c.customer_id] = c
    if not fresh:
        return 0
    new_ids = allocate_ids(session, EngageJourney.__table__, len(fresh))  # type: ignore[arg-type]
    journeys, logs = [], []
    for jid, c in zip(new_ids, fresh.values(), strict=True):
        control = book.holdout > 0 and _unit(book.name, "holdout", c.customer_id) < book.holdout
        journeys.append(
            {
                "id": jid,
                "workspace_id": workspace_id,
                "playbook_id": playbook_id,
                "playbook_name": book.name,
                "customer_id": c.customer_id,
                "arm": "control" if control else "treatment",
                "variant": None,
                "step": 0,
                "state": "control" if control else "active",
                "wake_at": None if control else now,
                "wait_event": None,
                "enrolled_at": now,
                "enrolled_ts": c.ts,
                "trigger_message_id": c.message_id,
                "updated_at": now,
            }
        )
        detail = f"{c.why}; {'held out (control group)' if control else 'treatment'}"
        logs.append(
            {
                "workspace_id": workspace_id,
                "journey_id": jid,
                "step": "-",
                "action": "enrolled",
                "detail": detail[:512],
                "at": now,
            }
        )
    insert_rows(session, table_of(EngageJourney), journeys)
    insert_rows(session, table_of(EngageJourneyLog), logs)
    return len(journeys)


def enroll_from_events(db: Database, workspace_id: int, now: datetime) -> int:
    """Enrol on new events and wake journeys waiting for one; returns journeys started."""
    with db.session() as session:
        books = active_playbooks(session, workspace_id)
        waits = set(
            session.scalars(
                select(EngageJourney.wait_event)
                .where(EngageJourney.workspace_id == workspace_id, EngageJourney.state == "waiting")
                .distinct()
            )
        )
        start = cursor(session, workspace_id, "playbooks")
    # Only as far as every smaller id is committed (PostgreSQL commits ids out of order): an
    # event committed later under the cursor would never enrol or wake anyone.
    top = settled_top(db, "events", workspace_id=workspace_id)
    if top is None:  # a writer that may hold a smaller id is still open: next tick
        top = start
    triggers = {b.trigger.event_name for _, b in books if b.trigger.event_name}
    names = sorted(n for n in triggers | waits if n)
    enrolled = 0
    with paused_gc():  # many small objects a batch: see _bulk.paused_gc
        while start < top:
            rows = _scan(db, workspace_id, names, start, top) if names else []
            end = int(rows[-1][0]) if len(rows) == SCAN else top
            by_book: dict[int, list[Candidate]] = {}
            arrived: dict[str, set[int]] = {}
            for _, customer_id, name, ts, message_id, raw in rows:
                props = orjson.loads(raw) if isinstance(raw, str | bytes) else dict(raw or {})
                if name in waits:
                    arrived.setdefault(name, set()).add(int(customer_id))
                for book_id, book in books:
                    if book.trigger.event_name == name and _matches(book.trigger, name, props):
                        why = f"trigger {name} ({message_id})"
                        if book.trigger.type == "stage_changed":
                            why = (
                                f"stage {props.get('from_stage', props.get('from'))} → "
                                f"{props.get('to_stage', props.get('to'))} ({message_id})"
                            )
                        by_book.setdefault(book_id, []).append(
                            Candidate(int(customer_id), int(ts), str(message_id), why)
                        )
            with db.transaction() as session:
                for book_id, candidates in by_book.items():
                    book = next(b for i, b in books if i == book_id)
                    enrolled += enroll(session, workspace_id, book_id, book, candidates, now)
                for name, customers in arrived.items():
                    _wake(session, workspace_id, name, customers, now)
                set_cursor(session, workspace_id, "playbooks", end)
            start = end
    return enrolled


def _scan(db: Database, workspace_id: int, names: list[str], after: int, top: int) -> list[Any]:
    marks = ", ".join(f":n{i}" for i in range(len(names)))
    sql = text(
        "SELECT id, customer_id, name, ts, message_id, properties FROM customer_events "  # noqa: S608
        f"WHERE workspace_id = :ws AND id > :after AND id <= :top AND name IN ({marks}) "
        "ORDER BY id LIMIT :limit"
    )
    params = {
        "ws": workspace_id,
        "after": after,
        "top": top,
        "limit": SCAN,
        **{f"n{i}": n for i, n in enumerate(names)},
    }
    with db.engine.connect() as conn:
        return list(conn.execute(sql, params))


def _wake(
    session: Session, workspace_id: int, name: str, customers: set[int], now: datetime
) -> None:
    ids = sorted(customers)
    for start in range(0, len(ids), 1_000):
        waiting = session.execute(
            select(EngageJourney.id, EngageJourney.step).where(
                EngageJourney.workspace_id == workspace_id,
                EngageJourney.state == "waiting",
                EngageJourney.wait_event == name,
                EngageJourney.customer_id.in_(ids[start : start + 1_000]),
            )
        ).all()
        if not waiting:
            continue
        session.execute(
            update(EngageJourney),
            [
                {
                    "id": w.id,
                    "state": "active",
                    "step": w.step + 1,
                    "wake_at": now,
                    "wait_event": None,
                    "updated_at": now,
                }
                for w in waiting
            ],
        )
        session.execute(
            insert(EngageJourneyLog),
            [
                {
                    "workspace_id": workspace_id,
                    "journey_id": w.id,
                    "step": "-",
                    "action": "event",
                    "detail": f"{name} arrived",
                    "at": now,
                }
                for w in waiting
            ],
        )


@dataclass
class Outcome:
    journey_id: int
    step: int
    state: str
    wake_at: datetime | None = None
    wait_event: str | None = None
    variant: str | None = None
    logs: list[tuple[str, str, str]] = field(default_factory=list)
    sends: list[SendRequest] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)
