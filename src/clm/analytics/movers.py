"""This week's biggest movers: the customers whose health score fell most, and the stage
moves (up or down the stage model), over the last few days, from the exact histories.

A health mover is a customer with a score both at the start of the window and now (their
latest ``health_history`` snapshot at or before each instant) whose score now is lower;
customers first scored inside the window are new, not movers: a first health score has no
"before", and a first P(alive) (a model's first score) changes the score with no move of
the customer's (a real install's first prediction fit would read as everyone's fall). A
stage move is a transition in the window, up (forward, skip, reactivation) or down
(backward, exit); entries (a customer's first stage) are counted as new, not as moves.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import and_, desc, func, select

from clm.analytics.kept import Kind, readings_of
from clm.analytics.trends import active_scorecard_id, active_stage_model, history_version
from clm.errors import Unavailable
from clm.lifecycle.health import STATE_LABELS
from clm.lifecycle.health_explain import drivers
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.history_filters import DOWN, UP, Direction, direction_of, score_changes
from clm.store.engine import Database
from clm.store.models import Customer, HealthSnapshot, StageTransition

DAY = 86_400


class MoversQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: Annotated[int, Field(ge=1, le=90, description="the window: the last N days")] = 7
    limit: Annotated[int, Field(ge=1, le=100, description="customers per list")] = 10


class Who(BaseModel):
    """Enough of a customer to name them and link to their page."""

    customer_id: int
    name: str | None
    email: str | None
    user_id: str | None


class HealthMover(Who):
    score_before: float
    score_now: float
    change: float
    state_before: str
    state_now: str
    moved_by: Annotated[
        list[str], Field(description="the factors that moved the score most, in words")
    ] = []


class StageMove(Who):
    at: datetime
    from_stage: str | None
    to_stage: str
    direction: Direction
    rule: str


class StageFlow(BaseModel):
    from_stage: str | None
    to_stage: str
    direction: Direction
    moves: int


class Movers(BaseModel):
    since: datetime
    until: datetime
    health_fell: Annotated[int, Field(description="customers whose score is lower than before")]
    health_rose: int
    health: Annotated[list[HealthMover], Field(description="biggest falls first")]
    stage_moves: Annotated[dict[str, int], Field(description="up, down and new: transitions")]
    stage_movers: Annotated[
        dict[str, int], Field(description="up, down and new: customers (the list's moved=)")
    ] = {}
    flows: list[StageFlow]
    stages: Annotated[list[StageMove], Field(description="the latest moves up or down")]
    current: Annotated[bool, Field(description="False: an older reading, being refreshed")] = True


def _who(raw: object) -> dict[str, object]:
    traits = getattr(raw, "traits", None) or {}
    name = traits.get("name") if isinstance(traits, dict) else None
    return {
        "customer_id": int(raw.customer_id),  # type: ignore[attr-defined]
        "name": name if isinstance(name, str) else None,
        "email": raw.email,  # type: ignore[attr-defined]
        "user_id": raw.user_id,  # type: ignore[attr-defined]
    }


def _health_movers(
    db: Database, workspace_id: int, since: int, until: int, limit: int
) -> tuple[int, int, list[HealthMover]]:
    definition_id = active_scorecard_id(db, workspace_id)
    moved = score_changes(definition_id, since, until)  # the list's health_fell filter's own
    counts = select(
        func.count().filter(moved.c.change < 0), func.count().filter(moved.c.change > 0)
    )
    fallen = (
        select(moved, Customer.email, Customer.user_id, Customer.traits)
        .join(Customer, Customer.id == moved.c.customer_id)
        .where(moved.c.change < 0, Customer.workspace_id == workspace_id)
        .order_by(moved.c.change, moved.c.customer_id)
        .limit(limit)
    )
    with db.session() as session:
        fell, rose = session.execute(counts).one()
        rows = session.execute(fallen).all()
        parts = {
            r.customer_id: (
                _contributions(session, definition_id, r.customer_id, since),
                _contributions(session, definition_id, r.customer_id, until),
            )
            for r in rows
        }
    _, card = get_scorecard(db, workspace_id)
    return (
        int(fell or 0),
        int(rose or 0),
        [
            HealthMover(
                **_who(r),  # type: ignore[arg-type]
                score_before=round(r.score_before, 2),
                score_now=round(r.score_now, 2),
                change=round(r.change, 2),
                state_before=STATE_LABELS.get(r.state_before, r.state_before),
                state_now=STATE_LABELS.get(r.state_now, r.state_now),
                moved_by=drivers(card, *parts[r.customer_id]),
            )
            for r in rows
        ],
    )


def _contributions(session: Any, definition_id: int, customer_id: int, at: int) -> dict[str, Any]:
    """The factor contributions of a customer's latest health snapshot at or before ``at``:
    what says why a mover's score fell (a large drop in a week is often a purchase leaving the
    365-day window, not a new event)."""
    h = HealthSnapshot
    found = session.scalar(
        select(h.contributions)
        .where(h.definition_id == definition_id, h.customer_id == customer_id, h.ts <= at)
        .order_by(desc(h.ts), desc(h.id))
        .limit(1)
    )
    return dict(found or {})


def _stage_moves(
    db: Database, workspace_id: int, since: int, until: int, limit: int
) -> tuple[dict[str, int], dict[str, int], list[StageFlow], list[StageMove]]:
    t = StageTransition
    definition_id, _ = active_stage_model(db, workspace_id)
    window = and_(t.definition_id == definition_id, t.ts > since, t.ts <= until)
    flows_query = (
        select(t.from_stage, t.to_stage, t.kind, func.count())
        .where(window)
        .group_by(t.from_stage, t.to_stage, t.kind)
    )
    latest = (
        select(
            t.customer_id,
            t.ts,
            t.from_stage,
            t.to_stage,
            t.kind,
            t.rule,
            Customer.email,
            Customer.user_id,
            Customer.traits,
        )
        .join(Customer, Customer.id == t.customer_id)
        .where(window, t.kind.in_(UP + DOWN), Customer.workspace_id == workspace_id)
        .order_by(desc(t.ts), desc(t.id))
        .limit(limit)
    )
    who = select(t.kind, t.customer_id).where(window).distinct()
    with db.session() as session:
        flow_rows = session.execute(flows_query).all()
        move_rows = session.execute(latest).all()
        movers: dict[str, set[int]] = {"up": set(), "down": set(), "new": set()}
        for kind, customer_id in session.execute(who):
            movers[direction_of(kind)].add(int(customer_id))
    totals = {"up": 0, "down": 0, "new": 0}
    flows = []
    for source, target, kind, n in flow_rows:
        direction = direction_of(kind)
        totals[direction] += int(n)
        flows.append(
            StageFlow(from_stage=source, to_stage=target, direction=direction, moves=int(n))
        )
    flows.sort(key=lambda f: (-f.moves, f.from_stage or "", f.to_stage))
    moves = [
        StageMove(
            **_who(r),  # type: ignore[arg-type]
            at=datetime.fromtimestamp(r.ts, UTC),
            from_stage=r.from_stage,
            to_stage=r.to_stage,
            direction=direction_of(r.kind),
            rule=r.rule,
        )
        for r in move_rows
    ]
    return totals, {d: len(c) for d, c in movers.items()}, flows, moves


def _version(db: Database, workspace_id: int) -> tuple[Any, int]:
    """The histories' version and the minute: the window moves with the clock."""
    stage_id, _ = active_stage_model(db, workspace_id)
    health_id = active_scorecard_id(db, workspace_id)
    return history_version(db, stage_id, health_id), int(time.time()) // 60


def _reading(db: Database, workspace_id: int, query: MoversQuery) -> tuple[Movers, Any]:
    version = _version(db, workspace_id)
    return _movers(db, workspace_id, query, int(datetime.now(UTC).timestamp())), version


MOVERS = Kind("movers", TypeAdapter(Movers), wait=60.0, min_interval=30.0)
PAGE_QUERY = MoversQuery(days=7, limit=8)  # what the overview page asks for


def store_movers(db: Database, workspace_id: int, query: MoversQuery) -> bool:
    """Store the movers unless the stored reading is current or young (the live loop, ``clm
    demo``); True when it read them."""
    return readings_of(db).ensure(
        MOVERS, workspace_id, query.model_dump(),
        version=lambda _: _version(db, workspace_id),
        compute=lambda: _reading(db, workspace_id, query),
    )  # fmt: skip


def movers(
    db: Database,
    workspace_id: int,
    query: MoversQuery | None = None,
    *,
    now: datetime | None = None,
) -> Movers:
    """Health falls and stage moves in the last ``days`` days up to ``now``. Without ``now``
    the answer is a stored reading (``clm.analytics.kept``), current while the histories are
    unchanged within the minute, else served while it is re-read (~0.3 s at 100,000
    customers); with it, read afresh."""
    query = query or MoversQuery()
    if now is not None:
        return _movers(db, workspace_id, query, int(now.timestamp()))
    reading, current = readings_of(db).get(
        MOVERS, workspace_id, query.model_dump(),
        version=lambda _: _version(db, workspace_id),
        compute=lambda: _reading(db, workspace_id, query),
    )  # fmt: skip
    if reading is None:
        raise Unavailable("This week's movers are still being read; try again")
    found = reading.value
    return found if current else found.model_copy(update={"current": False})


def _movers(db: Database, workspace_id: int, query: MoversQuery, until: int) -> Movers:
    since = until - query.days * DAY
    fell, rose, health = _health_movers(db, workspace_id, since, until, query.limit)
    totals, customers, flows, stages = _stage_moves(db, workspace_id, since, until, query.limit)
    return Movers(
        since=datetime.fromtimestamp(since, UTC), until=datetime.fromtimestamp(until, UTC),
        health_fell=fell, health_rose=rose, health=health, stage_moves=totals,
        stage_movers=customers, flows=flows, stages=stages,
    )  # fmt: skip
