"""The customer list: search, filter, sort and page customers with their lifecycle columns,
all in the database (one query a page), so a list of millions never reaches the browser.

Each row carries what a customer-success team scans for: current stage (the active stage
model's latest transition up to now), health state and score (the stored current score,
``health_scores``) with its top reasons, the latest P(alive) and 12-month CLV (the customer's
newest ``Prediction Scored`` event), last seen (their newest event that is not CLM's own)
and traits. Columns are correlated sub-queries on indexed keys: a page computes them for its
own rows only, unless the list is filtered or sorted by them. CSV export runs the same query.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Float, Select, and_, cast, desc, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.conditions import Condition, CustomerColumns, compile_conditions
from clm.lifecycle.health import STATE_LABELS
from clm.lifecycle.health_inputs import get_scorecard
from clm.predictions.repository import SCORE_EVENT
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    Event,
    HealthScore,
    Identity,
    LifecycleDefinition,
    StageTransition,
)
from clm.store.own_events import OWN_CHANNEL

MAX_PER_PAGE = 500
EXPORT_LIMIT = 1_000_000


class SortKey(StrEnum):
    id = "id"
    last_seen = "last_seen"
    health_score = "health_score"
    stage = "stage"
    p_alive = "p_alive"
    clv = "clv"


class CustomerQuery(BaseModel):
    """One view of the list: what to search, filter by, sort by, and which page."""

    model_config = ConfigDict(extra="forbid")

    q: Annotated[str | None, Field(max_length=200, description="part of a name, email or id")] = (
        None
    )
    stage: Annotated[list[str], Field(description="current stage is one of these")] = []
    health_state: Annotated[list[str], Field(description="happy, at_risk, unhappy")] = []
    sort: SortKey = SortKey.id
    order: Annotated[str, Field(pattern="^(asc|desc)$")] = "asc"
    page: Annotated[int, Field(ge=1)] = 1
    per_page: Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] = 50


class CustomerRow(BaseModel):
    id: int
    user_id: str | None
    email: str | None
    name: str | None
    stage: str | None
    health_state: str | None
    health_label: str | None
    health_score: float | None
    reasons: list[str]
    p_alive: float | None
    clv: float | None
    last_seen_at: datetime | None
    traits: dict[str, Any]


class CustomerList(BaseModel):
    items: list[CustomerRow]
    total: int
    page: int
    per_page: int


def _active_id(db: Database, workspace_id: int, kind: str) -> int:
    """The active definition's id: one indexed read (versions are immutable, so the compiled
    model is not needed here); installs the default when the workspace has none."""
    with db.session() as session:
        found = session.scalar(
            select(LifecycleDefinition.id)
            .where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.kind == kind,
                LifecycleDefinition.active.is_(True),
            )
            .order_by(LifecycleDefinition.id.desc())
            .limit(1)
        )
    if found is not None:
        return int(found)
    if kind == "stages":
        return get_stage_model(db, workspace_id)[0].id
    return get_scorecard(db, workspace_id)[0]


_LABELS: dict[tuple[str, int], dict[str, str]] = {}


def _labels_of(db: Database, workspace_id: int, definition_id: int) -> dict[str, str]:
    """Factor labels of a scorecard version (versions are immutable, so cached by id)."""
    key = (str(db.engine.url), definition_id)
    if key not in _LABELS:
        card = get_scorecard(db, workspace_id)[1]
        if len(_LABELS) > 256:
            _LABELS.clear()
        _LABELS[key] = {name: factor.label or name for name, factor in card.factors.items()}
    return _LABELS[key]


def _columns(db: Database, workspace_id: int, now: int) -> dict[str, Any]:
    """The derived columns as correlated sub-queries over ``Customer``."""
    stage_id = _active_id(db, workspace_id, "stages")
    health_id = _active_id(db, workspace_id, "health")
    stage = (
        select(StageTransition.to_stage)
        .where(
            StageTransition.definition_id == stage_id,
            StageTransition.customer_id == Customer.id,
            StageTransition.ts <= now,
        )
        .order_by(desc(StageTransition.ts), desc(StageTransition.id))
        .limit(1)
        .scalar_subquery()
    )
    last_seen = (
        select(func.max(Event.ts))
        .join(Identity, Identity.id == Event.identity_id)
        .where(
            Identity.customer_id == Customer.id,
            or_(Event.channel.is_(None), Event.channel != OWN_CHANNEL),  # the customer's own doing
        )
        .scalar_subquery()
    )

    def prediction(key: str) -> ColumnElement[Any]:
        return (
            select(cast(Event.properties[key].as_float(), Float))
            .join(Identity, Identity.id == Event.identity_id)
            .where(Identity.customer_id == Customer.id, Event.name == SCORE_EVENT)
            .order_by(desc(Event.ts), desc(Event.id))
            .limit(1)
            .scalar_subquery()
        )

    return {
        "health_id": health_id,
        "stage": stage.label("stage"),
        "last_seen": last_seen.label("last_seen"),
        "p_alive": prediction("p_alive").label("p_alive"),
        "clv": prediction("clv_12m").label("clv"),
    }


def _select(
    db: Database, workspace_id: int, query: CustomerQuery, now: int,
    conditions: Sequence[Condition] = (),
) -> tuple[Select[Any], Select[Any]]:  # fmt: skip
    """The page's statement and its count (which computes only the columns it filters on);
    ``conditions`` (a saved segment's) narrow it further."""
    cols = _columns(db, workspace_id, now)
    statement = (
        select(
            Customer.id,
            Customer.user_id,
            Customer.email,
            Customer.traits,
            cols["stage"],
            HealthScore.state,
            HealthScore.score,
            HealthScore.contributions,
            cols["p_alive"],
            cols["clv"],
            cols["last_seen"],
        )
        .outerjoin(
            HealthScore,
            and_(
                HealthScore.customer_id == Customer.id,
                HealthScore.definition_id == cols["health_id"],
            ),
        )
        .where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None))
    )
    if query.q:
        text = query.q.strip()
        like = f"%{text}%"
        matches = [
            Customer.email.ilike(like),
            Customer.user_id.ilike(like),
            Customer.traits["name"].as_string().ilike(like),
        ]
        if text.isdigit():
            matches.append(Customer.id == int(text))
        statement = statement.where(or_(*matches))
    if query.stage:
        statement = statement.where(cols["stage"].in_(query.stage))
    if query.health_state:
        statement = statement.where(HealthScore.state.in_(query.health_state))
    if conditions:
        where = CustomerColumns(
            stage=cols["stage"].element, health=HealthScore.state.expression,
            health_score=HealthScore.score.expression,
            p_alive=cols["p_alive"].element, clv=cols["clv"].element,
            last_seen=cols["last_seen"].element, rfm=None, now=now,
            dialect=db.engine.dialect.name,
        )  # fmt: skip
        statement = statement.where(compile_conditions(conditions, where))
    key = {
        SortKey.id: Customer.id,
        SortKey.last_seen: cols["last_seen"],
        SortKey.health_score: HealthScore.score,
        SortKey.stage: cols["stage"],
        SortKey.p_alive: cols["p_alive"],
        SortKey.clv: cols["clv"],
    }[query.sort]
    ordered = key.desc() if query.order == "desc" else key.asc()
    counted = select(func.count()).select_from(
        statement.with_only_columns(Customer.id).order_by(None).subquery()
    )
    return statement.order_by(ordered.nulls_last(), Customer.id), counted


def _reasons(contributions: dict[str, Any] | None, labels: dict[str, str]) -> list[str]:
    """The factors costing the most points, in words (as the customer's health page says)."""
    if not contributions:
        return []
    losing = []
    for factor, part in contributions.items():
        if not isinstance(part, dict):
            continue
        points, weight = float(part.get("points") or 0), float(part.get("weight") or 0)
        if weight - points >= 0.5:
            losing.append((points - weight, factor, part.get("value"), points, weight))
    losing.sort()
    return [
        f"{labels.get(f, f)}: {_shown(v)} (earns {p:.0f} of {w:.0f} points)"
        for _, f, v, p, w in losing[:3]
    ]


def _shown(value: Any) -> Any:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else value


def _row(raw: Any, labels: dict[str, str]) -> CustomerRow:
    traits = raw.traits or {}
    contributions = raw.contributions
    if isinstance(contributions, str):
        contributions = json.loads(contributions)
    return CustomerRow(
        id=raw.id,
        user_id=raw.user_id,
        email=raw.email,
        name=traits.get("name") if isinstance(traits.get("name"), str) else None,
        stage=raw.stage,
        health_state=raw.state,
        health_label=STATE_LABELS.get(raw.state) if raw.state else None,
        health_score=raw.score,
        reasons=_reasons(contributions, labels) if raw.state in ("at_risk", "unhappy") else [],
        p_alive=raw.p_alive,
        clv=raw.clv,
        last_seen_at=datetime.fromtimestamp(raw.last_seen, UTC) if raw.last_seen else None,
        traits=traits,
    )


def list_customers(
    db: Database, workspace_id: int, query: CustomerQuery, *, now: datetime | None = None,
    conditions: Sequence[Condition] = (),
) -> CustomerList:  # fmt: skip
    """One page of the customer list and the total that match (and meet ``conditions``)."""
    at = int((now or datetime.now(UTC)).timestamp())
    statement, counted = _select(db, workspace_id, query, at, conditions)
    labels = _labels_of(db, workspace_id, _active_id(db, workspace_id, "health"))
    with db.session() as session:
        total = int(session.scalar(counted) or 0)
        rows = session.execute(
            statement.limit(query.per_page).offset((query.page - 1) * query.per_page)
        ).all()
    return CustomerList(
        items=[_row(r, labels) for r in rows],
        total=total,
        page=query.page,
        per_page=query.per_page,
    )


CSV_COLUMNS = (
    "id", "user_id", "email", "name", "stage", "health_state", "health_score", "p_alive", "clv",
    "last_seen_at", "reasons",
)  # fmt: skip


def export_csv(
    db: Database, workspace_id: int, query: CustomerQuery, *, now: datetime | None = None,
    conditions: Sequence[Condition] = (),
) -> Iterator[str]:  # fmt: skip
    """Every customer the query matches (all pages), as CSV text chunks."""
    at = int((now or datetime.now(UTC)).timestamp())
    statement = _select(db, workspace_id, query, at, conditions)[0].limit(EXPORT_LIMIT)
    labels = _labels_of(db, workspace_id, _active_id(db, workspace_id, "health"))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    with db.session() as session:
        for raw in session.execute(statement).yield_per(2_000):
            row = _row(raw, labels)
            writer.writerow([
                row.id, row.user_id or "", row.email or "", row.name or "", row.stage or "",
                row.health_state or "", "" if row.health_score is None else row.health_score,
                "" if row.p_alive is None else row.p_alive, "" if row.clv is None else row.clv,
                row.last_seen_at.isoformat() if row.last_seen_at else "", "; ".join(row.reasons),
            ])  # fmt: skip
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def matching_ids(
    db: Database, workspace_id: int, conditions: Sequence[Condition], *,
    now: datetime | None = None,
) -> list[int]:  # fmt: skip
    """The ids of every live customer meeting ``conditions`` (a saved segment's members, for
    report filters and playbook triggers), in one query."""
    at = int((now or datetime.now(UTC)).timestamp())
    statement = _select(db, workspace_id, CustomerQuery(), at, conditions)[0]
    with db.session() as session:
        rows = session.scalars(statement.with_only_columns(Customer.id).order_by(Customer.id))
        return [int(r) for r in rows]
