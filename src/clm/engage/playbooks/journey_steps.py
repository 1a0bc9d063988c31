"""Walking journeys through their steps: ``advance`` and ``tick``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage._bulk import insert_rows, paused_gc, update_by_id
from clm.engage.delivery import outbox
from clm.engage.playbooks.journey_calendar import enroll_calendar
from clm.engage.playbooks.journeys import (
    BATCH,
    Outcome,
    _unit,
    enroll_from_events,
)
from clm.engage.playbooks.schemas import PlaybookDefinition, Step
from clm.engage.playbooks.standing import stages_at
from clm.engage.schemas import SendRequest
from clm.lifecycle.conditions import conditions_hold
from clm.store.engine import Database
from clm.store.models import (
    EngageJourney,
    EngageJourneyLog,
    EngagePlaybook,
    EngageTask,
    table_of,
)
from clm.store.own_events import OWN_CHANNEL

log = logging.getLogger("clm.engage.journeys")


class TickReport(BaseModel):
    enrolled: int
    steps: int
    sends: int
    blocked: int
    seconds: float


def _duration(step: Step) -> timedelta:
    return timedelta(days=step.days, hours=step.hours)


def run_journey(
    journey: Any,
    book: PlaybookDefinition,
    version: int,
    profile: dict[str, Any] | None,
    stage: str | None,
    now: datetime,
) -> Outcome:
    """Execute steps from the journey's current one until it waits or ends."""
    out = Outcome(journey.id, journey.step, "active", variant=journey.variant)
    steps = book.steps
    i = journey.step
    traits = dict((profile or {}).get("traits") or {})
    if journey.state == "waiting":  # woken by the timeout, not by the event
        step = steps[i]
        out.logs.append((step.id, "timeout", f"no {step.event} within {_duration(step)}"))
        i = book.index(step.on_timeout) if step.on_timeout else i + 1
    for _ in range(len(steps) + 2):
        if i >= len(steps):
            out.state = "completed"
            out.logs.append(("-", "completed", "end of playbook"))
            break
        step = steps[i]
        if step.type == "send":
            assert step.content is not None
            out.sends.append(
                SendRequest(
                    customer_id=journey.customer_id,
                    channel=step.channel,
                    category=step.category,
                    purpose=step.purpose,
                    content=step.content,
                    idempotency_key=f"pb-{journey.id}-{step.id}",
                    source=f"playbook:{book.name}:v{version}:{step.id}",
                    context={"stage": stage, "variant": out.variant},
                )
            )
            out.logs.append((step.id, "send", f"{step.channel} {step.category}"))
            i += 1
        elif step.type == "wait":
            out.wake_at = now + _duration(step)
            out.logs.append((step.id, "wait", f"until {out.wake_at:%Y-%m-%d %H:%M} UTC"))
            i += 1
            break
        elif step.type == "wait_until":
            out.state, out.wait_event = "waiting", step.event
            out.wake_at = now + _duration(step)
            out.logs.append(
                (step.id, "wait", f"for {step.event} until {out.wake_at:%Y-%m-%d %H:%M} UTC")
            )
            break
        elif step.type == "branch":
            ok = conditions_hold(step.conditions, traits, stage, out.variant)
            target = step.then if ok else step.otherwise
            described = ", ".join(f"{c.attr} {c.op} {c.value!r}" for c in step.conditions)
            out.logs.append((step.id, "branch", f"{'then' if ok else 'else'}: {described}"))
            i = book.index(target) if target else i + 1
        elif step.type == "split":
            pick, total = _unit(book.name, step.id, journey.customer_id), 0.0
            weights = sum(step.variants.values())
            for name, weight in step.variants.items():
                total += weight / weights
                if pick < total:
                    out.variant = name
                    break
            out.variant = out.variant or list(step.variants)[-1]
            out.logs.append((step.id, "split", f"variant {out.variant}"))
            target = step.goto.get(out.variant)
            i = book.index(target) if target else i + 1
        elif step.type == "task":
            out.tasks.append(
                {
                    "title": step.title or "",
                    "owner": step.owner or traits.get("account_owner"),
                    "key": f"pb-{journey.id}-{step.id}",
                }
            )
            out.logs.append((step.id, "task", step.title or ""))
            i += 1
        elif step.type == "update":
            out.traits.update(step.traits)
            out.logs.append((step.id, "update", ", ".join(sorted(step.traits))))
            i += 1
        else:  # exit
            out.state = "exited"
            out.logs.append((step.id, "exit", step.reason or "exit step"))
            break
    else:
        out.state = "exited"
        out.logs.append(("-", "exit", "step loop without a wait"))
    out.step = i
    return out


def _run_isolated(
    workspace_id: int,
    journey: Any,
    book: PlaybookDefinition,
    version: int,
    profile: dict[str, Any] | None,
    stage: str | None,
    now: datetime,
) -> Outcome:
    """``run_journey``, with a failure kept to this journey: it stops in ``failed`` with the
    error in its history, and everyone else's journeys go on."""
    try:
        return run_journey(journey, book, version, profile, stage, now)
    except Exception as exc:
        step = book.steps[journey.step].id if journey.step < len(book.steps) else "-"
        return _failed(workspace_id, journey.id, journey.step, step, exc)


def _failed(workspace_id: int, journey_id: int, index: int, step: str, exc: Exception) -> Outcome:
    detail = f"{type(exc).__name__}: {exc}"
    log.error(
        "journey step failed",
        extra={"workspace_id": workspace_id, "journey_id": journey_id, "step": step,
               "error": type(exc).__name__},
    )  # fmt: skip
    return Outcome(journey_id, index, "failed", logs=[(step, "error", detail)])


def _fail_unrendered(outcomes: list[Outcome], decided: Sequence[outbox.Decided]) -> None:
    """A send whose template failed for this customer stops the journey, with the error."""
    by_key = {request.idempotency_key: o for o in outcomes for request in o.sends}
    for d in decided:
        outcome = by_key.get(d.request.idempotency_key)
        if d.status != "dead" or outcome is None:
            continue
        step = d.request.source.rsplit(":", 1)[-1]
        outcome.state, outcome.wake_at, outcome.wait_event = "failed", None, None
        outcome.logs.append((step, "error", d.reason or "send failed"))


def _uses_stage(book: PlaybookDefinition) -> bool:
    for step in book.steps:
        if any(c.attr == "stage" for c in step.conditions):
            return True
        if step.content is not None and "stage" in step.content.model_dump_json():
            return True
    return False


def advance(db: Database, workspace_id: int, now: datetime) -> tuple[int, int, int]:
    """Run due journeys: (steps taken, sends decided, sends blocked)."""
    steps_taken = sends = blocked = 0
    last_id = 0
    with db.session() as session:
        latest: dict[str, str] = {}
        for name, status in session.execute(
            select(EngagePlaybook.name, EngagePlaybook.status)
            .where(EngagePlaybook.workspace_id == workspace_id)
            .order_by(EngagePlaybook.version)
        ):
            latest[name] = status
    paused = sorted(n for n, s in latest.items() if s == "paused")
    books: dict[int, tuple[PlaybookDefinition, int]] = {}
    broken: dict[int, Exception] = {}  # stored definitions that no longer validate
    with paused_gc():  # many small objects a batch: see _bulk.paused_gc
        while True:
            with db.session() as session:
                due = session.execute(
                    select(
                        EngageJourney.id,
                        EngageJourney.playbook_id,
                        EngageJourney.customer_id,
                        EngageJourney.step,
                        EngageJourney.state,
                        EngageJourney.variant,
                    )
                    .where(
                        EngageJourney.workspace_id == workspace_id,
                        EngageJourney.state.in_(("active", "waiting")),
                        EngageJourney.wake_at <= now,
                        EngageJourney.id > last_id,
                        EngageJourney.playbook_name.not_in(paused),
                    )
                    .order_by(EngageJourney.id)
                    .limit(BATCH)
                ).all()
                if not due:
                    break
                last_id = due[-1].id
                for pid in {j.playbook_id for j in due} - set(books) - set(broken):
                    row = session.get(EngagePlaybook, pid)
                    assert row is not None
                    try:
                        definition = PlaybookDefinition.model_validate(row.definition)
                    except ValueError as exc:  # stored before a rule it breaks (e.g. a category)
                        broken[pid] = exc
                        continue
                    books[pid] = (definition, row.version)
                ids = sorted({j.customer_id for j in due})
                profiles = repo.customer_profiles(session, workspace_id, ids)
                need_stage = any(
                    _uses_stage(books[j.playbook_id][0]) for j in due if j.playbook_id in books
                )
                stages = stages_at(db, workspace_id, session, ids, now) if need_stage else {}
            outcomes = [
                _failed(workspace_id, j.id, j.step, "-", broken[j.playbook_id])
                if j.playbook_id in broken
                else _run_isolated(
                    workspace_id,
                    j,
                    *books[j.playbook_id],
                    profiles.get(j.customer_id),
                    stages.get(j.customer_id),
                    now,
                )
                for j in due
            ]
            requests = [s for o in outcomes for s in o.sends]
            health = outbox.health_for(db, workspace_id, requests, now)
            with db.transaction() as session:
                decided = outbox.decide_in(
                    session, workspace_id, requests, now, health=health, profiles=profiles
                )
                _fail_unrendered(outcomes, decided)
                _store(session, workspace_id, due, outcomes, now)
            outbox.blocked_events(db, workspace_id, decided, now)
            _trait_updates(db, workspace_id, due, outcomes, profiles, now)
            steps_taken += sum(len(o.logs) for o in outcomes)
            sends += len(decided)
            blocked += sum(1 for d in decided if d.status == "blocked")
    if sends:
        outbox.notify_worker()
    return steps_taken, sends, blocked


def _store(
    session: Session, workspace_id: int, due: Sequence[Any], outcomes: list[Outcome], now: datetime
) -> None:
    update_by_id(
        session,
        table_of(EngageJourney),
        [
            {
                "id": o.journey_id,
                "step": o.step,
                "state": o.state,
                "wake_at": o.wake_at,
                "wait_event": o.wait_event,
                "variant": o.variant,
                "updated_at": now,
            }
            for o in outcomes
        ],
    )
    logs = [
        {
            "workspace_id": workspace_id,
            "journey_id": o.journey_id,
            "step": step,
            "action": action,
            "detail": detail[:512],
            "at": now,
        }
        for o in outcomes
        for step, action, detail in o.logs
    ]
    insert_rows(session, table_of(EngageJourneyLog), logs)
    tasks = [
        {
            "workspace_id": workspace_id,
            "customer_id": j.customer_id,
            "kind": "playbook",
            "title": t["title"],
            "owner": t["owner"],
            "detail": {"journey_id": j.id},
            "status": "open",
            "dedupe_key": t["key"],
            "created_at": now,
        }
        for j, o in zip(due, outcomes, strict=True)
        for t in o.tasks
    ]
    if tasks:
        session.execute(insert(table_of(EngageTask)), tasks)


def _trait_updates(
    db: Database,
    workspace_id: int,
    due: Sequence[Any],
    outcomes: list[Outcome],
    profiles: dict[int, dict[str, Any]],
    now: datetime,
) -> None:
    """Attribute updates are ``identify`` events: the log stays the one source of truth."""
    messages = []
    for j, o in zip(due, outcomes, strict=True):
        profile = profiles.get(j.customer_id)
        if not o.traits or profile is None:
            continue
        who = (
            {"userId": profile["user_id"]}
            if profile.get("user_id")
            else {"anonymousId": profile.get("anonymous_id")}
        )
        if not any(who.values()):
            continue
        messages.append(
            {
                "type": "identify",
                **who,
                "traits": o.traits,
                "messageId": f"{eventlog.PREFIX}journey-{j.id}-{o.step}",
                "timestamp": now.isoformat(),
                # CLM's doing, not the customer's: kept out of reports' periods and activity
                "context": {"library": {"name": "clm-engage"}, "channel": OWN_CHANNEL},
            }
        )
    eventlog.write(db, workspace_id, messages)


def tick(db: Database, workspace_id: int, now: datetime | None = None) -> TickReport:
    """Enrol on new events and dates, then advance every due journey."""
    import time

    clock = time.perf_counter()
    at = now or datetime.now(UTC)
    enrolled = enroll_from_events(db, workspace_id, at) + enroll_calendar(db, workspace_id, at)
    steps, sends, blocked = advance(db, workspace_id, at)
    return TickReport(
        enrolled=enrolled,
        steps=steps,
        sends=sends,
        blocked=blocked,
        seconds=round(time.perf_counter() - clock, 3),
    )
