"""Points earned from events by configurable rules: N points per currency unit on a purchase,
a flat bonus on events whose properties match.

A rule reads the event log after a cursor, so each event earns once; the ledger transaction id
is ``earn:<rule index>:<event message id>``, so even a replayed pass credits nothing twice.
Earned points expire ``expires_days`` after the event (``ledger.expire`` writes the expiry).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from clm.engage import repository as repo
from clm.engage.playbooks.journeys import cursor, set_cursor
from clm.engage.referrals import ledger
from clm.store.engine import Database
from clm.store.settled import settled_top

_CONSUMER = "points"
_SCAN = 20_000


class EarningRule(BaseModel):
    """On ``event`` (whose properties equal ``where``): ``points_per_unit`` × the amount in
    ``amount_property`` (rounded down) plus a flat ``bonus``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    event: str = "Order Completed"
    where: dict[str, Any] = Field(default_factory=dict)
    points_per_unit: Annotated[float, Field(ge=0)] = 0.0
    amount_property: str = "revenue"
    bonus: Annotated[int, Field(ge=0, le=10**12)] = 0
    expires_days: Annotated[int | None, Field(ge=1, le=36_500)] = 365
    memo: str = ""


class PointsProgram(BaseModel):
    """A workspace's earning rules; every matching rule earns (a bonus adds to the base)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rules: list[EarningRule] = Field(default_factory=list)


def set_points_program(db: Database, workspace_id: int, program: PointsProgram) -> PointsProgram:
    """Store the rules; they apply to events logged from now on, not to history."""
    with db.transaction() as session:
        if repo.get_config(session, workspace_id, "program", "points") is None:
            top = session.scalar(
                text("SELECT max(id) FROM events WHERE workspace_id = :ws"), {"ws": workspace_id}
            )
            set_cursor(session, workspace_id, _CONSUMER, int(top or 0))
        repo.put_config(session, workspace_id, "program", "points", program.model_dump())
    return program


def get_points_program(db: Database, workspace_id: int) -> PointsProgram | None:
    with db.session() as session:
        found = repo.get_config(session, workspace_id, "program", "points")
    return None if found is None else PointsProgram.model_validate(found)


def points_for(rule: EarningRule, name: str, properties: dict[str, Any]) -> int:
    """The points one event earns under one rule (0 when it does not match)."""
    if name != rule.event or any(properties.get(k) != v for k, v in rule.where.items()):
        return 0
    amount = properties.get(rule.amount_property)
    per_unit = 0
    if rule.points_per_unit and isinstance(amount, int | float) and amount > 0:
        per_unit = math.floor(float(amount) * rule.points_per_unit + 1e-9)
    return per_unit + rule.bonus


def earn_from_events(db: Database, workspace_id: int, now: datetime) -> int:
    """Credit the points every new event earns; returns the points credited."""
    program = get_points_program(db, workspace_id)
    if program is None or not program.rules:
        return 0
    names = sorted({r.event for r in program.rules})
    marks = ", ".join(f":n{i}" for i in range(len(names)))
    sql = text(
        "SELECT id, customer_id, name, message_id, properties, ts "  # noqa: S608
        f"FROM customer_events WHERE workspace_id = :ws AND id > :after AND id <= :top "
        f"AND name IN ({marks}) ORDER BY id LIMIT :limit"
    )
    # Only as far as every smaller id is committed (PostgreSQL commits ids out of order): a
    # purchase committed later under the cursor would never earn.
    top = settled_top(db, "events", workspace_id=workspace_id)
    if top is None:  # a writer that may hold a smaller id is still open: the next tick
        return 0
    credited = 0
    while True:
        with db.transaction() as session:
            after = cursor(session, workspace_id, _CONSUMER)
            rows = session.execute(
                sql,
                {
                    "ws": workspace_id,
                    "after": after,
                    "top": top,
                    "limit": _SCAN,
                    **{f"n{i}": n for i, n in enumerate(names)},
                },
            ).all()
            if not rows:
                return credited
            for _, customer_id, name, message_id, raw, ts in rows:
                props = orjson.loads(raw) if isinstance(raw, str | bytes) else dict(raw or {})
                at = datetime.fromtimestamp(int(ts), UTC)
                for index, rule in enumerate(program.rules):
                    points = points_for(rule, str(name), props)
                    if points <= 0:
                        continue
                    ledger._lock(session, int(customer_id))
                    expires = at + timedelta(days=rule.expires_days) if rule.expires_days else None
                    if ledger.post(
                        session,
                        workspace_id,
                        int(customer_id),
                        points,
                        "earn",
                        f"earn:{index}:{message_id}",
                        now,
                        memo=rule.memo or f"{name} ({message_id})",
                        expires_at=expires,
                    ):
                        credited += points
            set_cursor(session, workspace_id, _CONSUMER, int(rows[-1][0]))
