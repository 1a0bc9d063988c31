"""One pass of the live loop over a workspace: stages, health, playbooks, delivery.

A pass is what cron used to be asked to do, in the order each step needs the one before:

1. ``clm.lifecycle.tick``: customers with new events get their stage history recomputed (the
   incremental ``update_lifecycle``, equal to a full run), and every transition whose time has
   come (a purchase's conversion now, a lapse or churn deadline that has just passed) is
   announced in the log as ``lifecycle_stage_changed``.
2. Health: the customers whose inputs changed since the last pass (any new event of theirs,
   stage changes and CLM's own events included, health's own announcements excluded) and those
   whose score the passing of time has changed are re-scored (``health.rescore_health``).
3. Engagement (``clm.engage.playbooks.run_due``): playbooks triggered by the stage and health
   changes just announced enrol and take their first step; journeys whose wait is over move on;
   referral rewards and points. The sends land in the outbox, which is drained at once
   (``drain_once``). This runs right after step 1 (so a stage-triggered email does not wait
   for health scoring) and again after step 2 when health re-scored anyone.
4. Current state (``clm.lifecycle.current_state.refresh_state``): the stored row of every
   customer with a new event (their own, or CLM's: stage and health announcements, scores,
   messages) and of every customer re-scored by the clock is rewritten as of ``now``, so the
   customer list and the counters read a table that is at most one pass old.
5. Saved segments: the first pass of each UTC day records every segment's size
   (``clm.lifecycle.saved_segments.record_sizes``), their size-over-time chart.

Every step is idempotent, so a pass run twice changes nothing more; passes of one workspace
run one at a time across processes (``clm.store.locks``), so two workers wait for each other
rather than interleave their reads and writes. The pass then says when the next one is due
(the next scheduled transition or journey wake-up), so the worker can wake exactly then
instead of on the next minute.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clm.config import Settings, get_settings
from clm.engage.delivery import drain_once
from clm.engage.playbooks import EngageTickReport, cursor, run_due, set_cursor
from clm.lifecycle import tick
from clm.lifecycle.current_state import StateReport, refresh_state
from clm.lifecycle.saved_segments import record_sizes
from clm.lifecycle.schemas import RunResult
from clm.store.engine import Database
from clm.store.locks import one_at_a_time
from clm.store.models import (
    EngageJourney,
    Event,
    HealthScore,
    Identity,
    LifecycleDefinition,
    PredictionFit,
    StageTransition,
)
from clm.store.own_events import HEALTH_CHANGED, MODEL_EVENTS, own_event_clause
from clm.store.settled import settled_top
from clm.worker.health import rescore_health

log = logging.getLogger("clm.worker")
HEALTH_CURSOR = "live.health"
PREDICT_CURSOR = "live.predict"


@dataclass(frozen=True)
class LiveReport:
    """What one pass did, and when the next one is due."""

    workspace_id: int
    stages: RunResult
    health_rescored: int
    state: StateReport
    engage: list[EngageTickReport]  # after the stage changes, then after the health changes
    enrolled: int
    sent: int
    refit_due: bool
    next_due: datetime | None
    seconds: float


def health_inputs_changed(db: Database, workspace_id: int, after: int, upto: int) -> list[int]:
    """Customers with an event in ``(after, upto]`` other than health's own announcements."""
    query = (
        select(Identity.customer_id)
        .join(Event, Event.identity_id == Identity.id)
        .where(
            Event.workspace_id == workspace_id,
            Event.id > after,
            Event.id <= upto,
            Event.name.is_distinct_from(HEALTH_CHANGED),
        )
        .distinct()
    )
    with db.session() as session:
        return sorted(int(c) for c in session.scalars(query))


def _customer_events_since(db: Database, workspace_id: int, after: int, upto: int) -> int:
    query = select(func.count()).where(
        Event.workspace_id == workspace_id,
        Event.id > after,
        Event.id <= upto,
        ~own_event_clause(Event.channel),
        func.coalesce(Event.name, "").not_in(MODEL_EVENTS),
    )
    with db.session() as session:
        return int(session.scalar(query) or 0)


def _has_fit(session: Session, workspace_id: int) -> bool:
    found = session.scalar(
        select(PredictionFit.id).where(PredictionFit.workspace_id == workspace_id).limit(1)
    )
    return found is not None


def next_due(db: Database, workspace_id: int, now: datetime) -> datetime | None:
    """The next moment something in the workspace changes by the clock alone: a scheduled stage
    transition (a lapse, a churn deadline), a health score's next due change, or a journey's
    wait running out."""
    cutoff = int(now.timestamp())
    with db.session() as session:
        transition = session.scalar(
            select(func.min(StageTransition.ts))
            .join(LifecycleDefinition, LifecycleDefinition.id == StageTransition.definition_id)
            .where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.kind == "stages",
                LifecycleDefinition.active.is_(True),
                StageTransition.announced.is_(False),
                StageTransition.ts > cutoff,
            )
        )
        wake = session.scalar(
            select(func.min(EngageJourney.wake_at)).where(
                EngageJourney.workspace_id == workspace_id,
                EngageJourney.state == "waiting",
                EngageJourney.wake_at.is_not(None),
            )
        )
        score_due = session.scalar(
            select(func.min(HealthScore.next_due))
            .join(LifecycleDefinition, LifecycleDefinition.id == HealthScore.definition_id)
            .where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.kind == "health",
                LifecycleDefinition.active.is_(True),
                HealthScore.next_due > cutoff,
            )
        )
    found = []
    for stamp in (transition, score_due):
        if stamp is not None:
            found.append(datetime.fromtimestamp(int(stamp), UTC))
    if wake is not None:
        found.append(wake if wake.tzinfo else wake.replace(tzinfo=UTC))
    return min(found) if found else None


def live_pass(
    db: Database,
    workspace_id: int,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> LiveReport:
    """Bring one workspace up to date as of ``now`` (default: the clock)."""
    with one_at_a_time(db, "live", workspace_id):
        return _live_pass(db, workspace_id, now, settings or get_settings())


def _live_pass(
    db: Database, workspace_id: int, now: datetime | None, settings: Settings
) -> LiveReport:
    clock = time.perf_counter()
    at = now or datetime.now(UTC)
    stages = tick(db, workspace_id, now=at)
    # Stage-triggered playbooks act (and their mail goes out) before health is re-scored, the
    # slowest step; playbooks triggered by the health changes act right after it.
    engage = [run_due(db, workspace_id, at)]
    sent = drain_once(db)
    # Only as far as every smaller id is committed: a later commit under it would be missed.
    settled = settled_top(db, "events", workspace_id=workspace_id)
    with db.session() as session:
        health_from = cursor(session, workspace_id, HEALTH_CURSOR)
        predict_from = cursor(session, workspace_id, PREDICT_CURSOR)
        top = health_from if settled is None else max(settled, health_from)
        if predict_from == 0 and _has_fit(session, workspace_id):
            predict_from = top  # fitted before the worker first looked: only count from here
    touched = health_inputs_changed(db, workspace_id, health_from, top)
    rescored = rescore_health(db, workspace_id, at, touched)
    health = len(rescored)
    refit_due = (
        _customer_events_since(db, workspace_id, predict_from, top)
        >= settings.live_predict_after_events
    )
    with db.transaction() as session:
        set_cursor(session, workspace_id, HEALTH_CURSOR, top)
        if refit_due or predict_from == top:
            set_cursor(session, workspace_id, PREDICT_CURSOR, top)
    if health:
        engage.append(run_due(db, workspace_id, at))
        sent += drain_once(db)
    state = refresh_state(db, workspace_id, now=at, customer_ids=rescored)
    # Each saved segment's size, once a day (the first pass of a UTC day counts it).
    record_sizes(db, workspace_id, at)
    report = LiveReport(
        workspace_id=workspace_id,
        stages=stages,
        health_rescored=health,
        state=state,
        engage=engage,
        enrolled=sum(e.enrolled for e in engage),
        sent=sent,
        refit_due=refit_due,
        next_due=next_due(db, workspace_id, at),
        seconds=round(time.perf_counter() - clock, 3),
    )
    log.info(
        "live pass",
        extra={
            "workspace_id": workspace_id,
            "stage_events": stages.events_written,
            "health_rescored": health,
            "enrolled": report.enrolled,
            "sends": sum(e.sends for e in engage),
            "sent": sent,
            "state_rows": state.customers,
            "seconds": report.seconds,
        },
    )
    return report
