"""Reading stage history: a customer's stage at any date, their history, transitions in a period
and counts per stage. Every read filters on ``ts <= as_of`` (default: now), so scheduled lapses
show up the moment they are due, whether or not a tick has run."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.schemas import StageAt, TransitionPage, TransitionPublic
from clm.store.engine import Database
from clm.store.models import Customer, StageTransition

MAX_PAGE = 1000


def _ts(at: datetime | None) -> int:
    return int((at or datetime.now(UTC)).timestamp())


def public(t: StageTransition) -> TransitionPublic:
    return TransitionPublic(
        customer_id=t.customer_id,
        at=t.occurred_at,
        ts=t.ts,
        from_stage=t.from_stage,
        to_stage=t.to_stage,
        kind=t.kind,
        rule=t.rule,
        cause_message_id=t.cause_message_id,
        cause="event" if t.cause_message_id else "time",
    )


def _survivor(session: Session, workspace_id: int, customer_id: int) -> int:
    """Follow merges: a merged-away customer's history lives under the one it merged into."""
    for _ in range(32):
        merged = session.scalar(
            select(Customer.merged_into_id).where(
                Customer.id == customer_id, Customer.workspace_id == workspace_id
            )
        )
        if merged is None:
            return customer_id
        customer_id = merged
    return customer_id


def stage_at(
    db: Database,
    workspace_id: int,
    customer_id: int,
    at: datetime | None = None,
    *,
    model: str | None = None,
    version: int | None = None,
) -> StageAt | None:
    """The stage of a customer at ``at`` (default now), or None before their first event."""
    info, _ = get_stage_model(db, workspace_id, model, version)
    with db.session() as session:
        customer_id = _survivor(session, workspace_id, customer_id)
        row = session.scalars(
            select(StageTransition)
            .where(
                StageTransition.definition_id == info.id,
                StageTransition.customer_id == customer_id,
                StageTransition.ts <= _ts(at),
            )
            .order_by(StageTransition.ts.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return StageAt(
        customer_id=customer_id,
        stage=row.to_stage,
        since=row.occurred_at,
        rule=row.rule,
        model=info.name,
        model_version=info.version,
    )


def customer_history(
    db: Database,
    workspace_id: int,
    customer_id: int,
    *,
    as_of: datetime | None = None,
    model: str | None = None,
    version: int | None = None,
) -> list[TransitionPublic]:
    """Every transition of one customer up to ``as_of``, oldest first."""
    info, _ = get_stage_model(db, workspace_id, model, version)
    with db.session() as session:
        customer_id = _survivor(session, workspace_id, customer_id)
        rows = session.scalars(
            select(StageTransition)
            .where(
                StageTransition.definition_id == info.id,
                StageTransition.customer_id == customer_id,
                StageTransition.ts <= _ts(as_of),
            )
            .order_by(StageTransition.ts)
        )
        return [public(r) for r in rows]


def transitions_between(
    db: Database,
    workspace_id: int,
    start: datetime,
    end: datetime,
    *,
    limit: int = 100,
    offset: int = 0,
    model: str | None = None,
    version: int | None = None,
    to_stage: str | None = None,
) -> TransitionPage:
    """Transitions with ``start <= time < end`` (never after now), paged, oldest first."""
    info, _ = get_stage_model(db, workspace_id, model, version)
    limit = max(1, min(limit, MAX_PAGE))
    end_ts = min(_ts(end) - 1, _ts(None))
    conditions = [
        StageTransition.definition_id == info.id,
        StageTransition.ts >= _ts(start),
        StageTransition.ts <= end_ts,
    ]
    if to_stage is not None:
        conditions.append(StageTransition.to_stage == to_stage)
    with db.session() as session:
        total = session.scalar(select(func.count()).where(*conditions)) or 0
        rows = session.scalars(
            select(StageTransition)
            .where(*conditions)
            .order_by(StageTransition.ts, StageTransition.customer_id)
            .limit(limit)
            .offset(offset)
        )
        items = [public(r) for r in rows]
    return TransitionPage(items=items, total=total, limit=limit, offset=offset)


def stage_counts(
    db: Database,
    workspace_id: int,
    at: datetime | None = None,
    *,
    model: str | None = None,
    version: int | None = None,
) -> dict[str, int]:
    """How many customers stand in each stage at ``at`` (default now); every stage listed."""
    info, compiled = get_stage_model(db, workspace_id, model, version)
    latest = (
        select(StageTransition.customer_id, func.max(StageTransition.ts).label("ts"))
        .where(StageTransition.definition_id == info.id, StageTransition.ts <= _ts(at))
        .group_by(StageTransition.customer_id)
        .subquery()
    )
    query = (
        select(StageTransition.to_stage, func.count())
        .join(
            latest,
            and_(
                StageTransition.customer_id == latest.c.customer_id,
                StageTransition.ts == latest.c.ts,
            ),
        )
        .where(StageTransition.definition_id == info.id)
        .group_by(StageTransition.to_stage)
    )
    counts = {stage.name: 0 for stage in compiled.stages}
    with db.session() as session:
        for stage, count in session.execute(query):
            counts[stage] = int(count)
    return counts
