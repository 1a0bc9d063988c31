"""The customer list: search, filter, sort and page customers with their lifecycle columns,
all in the database (one query a page), so a list of millions never reaches the browser.

Each row carries what a customer-success team scans for: current stage, health state and score
with its top reasons, RFM segment, the latest P(alive) and 12-month CLV, revenue, last seen
(their newest event that is not CLM's own) and traits. Every column but the reasons and the
traits is read from ``customer_states`` (``clm.lifecycle.current_state``: one stored row per
customer, kept by the live loop, at most one pass old), so every filter and sort is a range of
one of its indexes; the reasons come from the page's own ``health_scores`` rows. CSV export
and saved segments (``conditions``) run the same query.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from clm.errors import FieldError
from clm.lifecycle.conditions import (
    MAX_NUMBER,
    RFM_SEGMENTS,
    Condition,
    CustomerColumns,
    compile_conditions,
)
from clm.lifecycle.current_state import ensure_fresh
from clm.lifecycle.health import STATE_LABELS, CompiledScorecard
from clm.lifecycle.health_explain import losing_reasons
from clm.lifecycle.health_inputs import get_scorecard
from clm.store.engine import Database
from clm.store.models import SEARCH_INDEX, Customer, CustomerState, HealthScore

MAX_PER_PAGE = 500
EXPORT_LIMIT = 1_000_000
MAX_COUNT = 2**31 - 1  # purchases is a 32-bit integer column
MAX_DAYS = 100 * 366


class SortKey(StrEnum):
    id = "id"
    last_seen = "last_seen"
    health_score = "health_score"
    stage = "stage"
    p_alive = "p_alive"
    clv = "clv"
    revenue = "revenue"
    purchases = "purchases"
    rfm = "rfm"


Money = Annotated[float | None, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]


class RangeFilters(BaseModel):
    """The list's range filters, each bound inclusive; ``unseen_days``: not seen for at least
    that many days. A customer missing the value (no score, never seen) matches no bound of
    it, as in the condition language these become (``conditions()``)."""

    model_config = ConfigDict(extra="forbid")

    health_score_min: Annotated[float | None, Field(ge=0, le=100)] = None
    health_score_max: Annotated[float | None, Field(ge=0, le=100)] = None
    p_alive_min: Annotated[float | None, Field(ge=0, le=1)] = None
    p_alive_max: Annotated[float | None, Field(ge=0, le=1)] = None
    clv_min: Money = None
    clv_max: Money = None
    revenue_min: Money = None
    revenue_max: Money = None
    purchases_min: Annotated[int | None, Field(ge=0, le=MAX_COUNT)] = None
    purchases_max: Annotated[int | None, Field(ge=0, le=MAX_COUNT)] = None
    seen_from: date | None = None
    seen_to: date | None = None
    unseen_days: Annotated[int | None, Field(ge=0, le=MAX_DAYS)] = None

    def errors(self) -> list[FieldError]:
        """Each range whose lower bound is above its upper bound, at the upper bound's field."""
        problems = []
        for low, high in RANGE_PAIRS:
            lower, upper = getattr(self, low), getattr(self, high)
            if lower is not None and upper is not None and lower > upper:
                shown = f"{lower:g}" if isinstance(lower, float) else str(lower)
                problems.append(FieldError(("query", high), f"is below the lower bound ({shown})"))
        return problems

    def conditions(self) -> list[Condition]:
        """The same filters in the condition language (what "Save as segment" stores)."""
        found = []
        for name, attr, op in RANGE_CONDITIONS:
            value = getattr(self, name)
            if value is not None:
                value = value.isoformat() if isinstance(value, date) else value
                found.append(Condition(attr=attr, op=op, value=value))
        return found


RANGE_PAIRS = (
    ("health_score_min", "health_score_max"), ("p_alive_min", "p_alive_max"),
    ("clv_min", "clv_max"), ("revenue_min", "revenue_max"),
    ("purchases_min", "purchases_max"), ("seen_from", "seen_to"),
)  # fmt: skip
RANGE_CONDITIONS = (
    ("health_score_min", "health_score", "gte"), ("health_score_max", "health_score", "lte"),
    ("p_alive_min", "p_alive", "gte"), ("p_alive_max", "p_alive", "lte"),
    ("clv_min", "clv", "gte"), ("clv_max", "clv", "lte"),
    ("revenue_min", "revenue", "gte"), ("revenue_max", "revenue", "lte"),
    ("purchases_min", "purchases", "gte"), ("purchases_max", "purchases", "lte"),
    ("seen_from", "last_seen_date", "gte"), ("seen_to", "last_seen_date", "lte"),
    ("unseen_days", "last_seen_days", "gte"),
)  # fmt: skip


class CustomerQuery(BaseModel):
    """One view of the list: what to search, filter by, sort by, and which page."""

    model_config = ConfigDict(extra="forbid")

    q: Annotated[str | None, Field(max_length=200, description="part of a name, email or id")] = (
        None
    )
    stage: Annotated[list[str], Field(description="current stage is one of these")] = []
    health_state: Annotated[list[str], Field(description="happy, at_risk, unhappy")] = []
    rfm: Annotated[list[str], Field(description="RFM segment is one of these")] = []
    ranges: RangeFilters = RangeFilters()
    sort: SortKey = SortKey.id
    order: Annotated[str, Field(pattern="^(asc|desc)$")] = "asc"
    page: Annotated[int, Field(ge=1)] = 1
    per_page: Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] = 50

    @field_validator("rfm")
    @classmethod
    def _known_segments(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in RFM_SEGMENTS]
        if unknown:
            raise ValueError(
                f"unknown RFM segment {unknown[0]!r}; one of {', '.join(RFM_SEGMENTS)}"
            )
        return value


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
    rfm_segment: str | None
    p_alive: float | None
    clv: float | None
    purchases: int
    revenue: float
    last_seen_at: datetime | None
    traits: dict[str, Any]


class CustomerList(BaseModel):
    items: list[CustomerRow]
    total: int
    page: int
    per_page: int
    refreshing: bool = Field(
        False,
        description="the rows are being caught up with an import: the list is as of the last "
        "refresh (every customer it held is still listed); ask again for the newer rows",
    )


def _scorecard_of(db: Database, workspace_id: int) -> CompiledScorecard:
    """The active scorecard, for the reasons' words: one indexed read (the compiled scorecard
    is cached by its text in the catalog; a cache by id would go wrong where ids repeat, as in
    a database emptied and refilled)."""
    return get_scorecard(db, workspace_id)[1]


State = CustomerState
SORT_COLUMNS: dict[SortKey, Any] = {
    SortKey.id: State.customer_id,
    SortKey.last_seen: State.last_seen_ts,
    SortKey.health_score: State.health_score,
    SortKey.stage: State.stage,
    SortKey.p_alive: State.p_alive,
    SortKey.clv: State.clv_12m,
    SortKey.revenue: State.revenue,
    SortKey.purchases: State.purchases,
    SortKey.rfm: State.rfm_segment,
}


def state_columns(now: int, dialect: str) -> CustomerColumns:
    """Where the condition language finds each attribute: the stored state row."""
    return CustomerColumns(
        stage=State.stage.expression, health=State.health_state.expression,
        health_score=State.health_score.expression, p_alive=State.p_alive.expression,
        clv=State.clv_12m.expression, last_seen=State.last_seen_ts.expression,
        rfm=State.rfm_segment.expression, now=now, dialect=dialect,
        revenue=State.revenue.expression, purchases=State.purchases.expression,
    )  # fmt: skip


def _reads_customer(conditions: Sequence[Condition]) -> bool:
    """Whether a condition reads the customer row (traits, search), not only the state row."""
    return any(c.attr == "search" or c.attr.startswith("traits.") for c in conditions)


def search_match(dialect: str, text: str) -> ColumnElement[bool]:
    """Customers whose search text (user id, email, name; lower-cased) contains ``text``.

    On SQLite, three characters or more are looked up in the trigram index ``customer_search``
    (FTS5, kept by triggers on ``customer_states``, migration 0021): a phrase of trigrams is a
    substring, found without reading every row (a ``LIKE '%text%'`` scans all 100,000 at
    100k customers). Shorter text, and PostgreSQL, use the ``LIKE``."""
    needle = text.lower()
    if dialect != "sqlite" or len(needle) < 3:
        return State.search_text.contains(needle, autoescape=True)
    phrase = '"' + needle.replace('"', '""') + '"'
    hits = select(SEARCH_INDEX.c.rowid).where(SEARCH_INDEX.c.search_text.op("MATCH")(phrase))
    return State.customer_id.in_(hits)


def customer_filter(
    db: Database, workspace_id: int, query: CustomerQuery, now: int,
    conditions: Sequence[Condition] = (), extra: Sequence[ColumnElement[bool]] = (),
) -> Select[Any]:  # fmt: skip
    """``SELECT customer_states.customer_id`` of the customers the query (search and filters,
    not sort or page), the ``conditions`` and any ``extra`` SQLAlchemy conditions over
    ``CustomerState`` match: the one statement every list, count, export and segment builds on.
    (Merged-away customers have no row: the refresh that sees a merge removes it.)"""
    statement = select(State.customer_id).where(State.workspace_id == workspace_id)
    conditions = [*query.ranges.conditions(), *conditions]
    if _reads_customer(conditions):
        statement = statement.join(Customer, Customer.id == State.customer_id)
    if query.q:
        text = query.q.strip()
        match = search_match(db.engine.dialect.name, text)
        if text.isdigit() and int(text) < 2**63:
            match = or_(match, State.customer_id == int(text))
        statement = statement.where(match)
    if query.stage:
        statement = statement.where(State.stage.in_(query.stage))
    if query.health_state:
        statement = statement.where(State.health_state.in_(query.health_state))
    if query.rfm:
        statement = statement.where(State.rfm_segment.in_(query.rfm))
    if conditions:
        columns = state_columns(now, db.engine.dialect.name)
        statement = statement.where(compile_conditions(conditions, columns))
    return statement.where(*extra)


def _select(
    db: Database, workspace_id: int, query: CustomerQuery, now: int,
    conditions: Sequence[Condition] = (), extra: Sequence[ColumnElement[bool]] = (),
) -> tuple[Select[Any], Select[Any]]:  # fmt: skip
    """The page's statement (sorted on an index: the key, then the id in the same direction,
    missing values last) and its count."""
    matching = customer_filter(db, workspace_id, query, now, conditions, extra)
    statement = matching.with_only_columns(
        State.customer_id.label("id"),
        Customer.user_id,
        Customer.email,
        Customer.traits,
        State.stage,
        State.health_state.label("state"),
        State.health_score.label("score"),
        HealthScore.contributions,
        State.rfm_segment,
        State.p_alive,
        State.clv_12m.label("clv"),
        State.purchases,
        State.revenue,
        State.last_seen_ts.label("last_seen"),
    )
    if not _reads_customer([*query.ranges.conditions(), *conditions]):
        statement = statement.join(Customer, Customer.id == State.customer_id)
    statement = statement.outerjoin(
        HealthScore,
        and_(
            HealthScore.definition_id == State.health_definition_id,
            HealthScore.customer_id == State.customer_id,
        ),
    )  # fmt: skip
    key = SORT_COLUMNS[query.sort]
    if query.order == "desc":
        order = [key.desc().nulls_last(), State.customer_id.desc()]
    else:
        order = [key.asc().nulls_last(), State.customer_id.asc()]
    if query.sort is SortKey.id:
        order = order[1:]
    counted = select(func.count()).select_from(matching.subquery())
    return statement.order_by(*order), counted


def _row(raw: Any, card: CompiledScorecard) -> CustomerRow:
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
        reasons=losing_reasons(card, contributions or {})
        if raw.state in ("at_risk", "unhappy")
        else [],
        rfm_segment=raw.rfm_segment,
        p_alive=raw.p_alive,
        clv=raw.clv,
        purchases=int(raw.purchases or 0),
        revenue=float(raw.revenue or 0.0),
        last_seen_at=datetime.fromtimestamp(raw.last_seen, UTC) if raw.last_seen else None,
        traits=traits,
    )


def list_customers(
    db: Database, workspace_id: int, query: CustomerQuery, *, now: datetime | None = None,
    conditions: Sequence[Condition] = (), extra: Sequence[ColumnElement[bool]] = (),
) -> CustomerList:  # fmt: skip
    """One page of the customer list and the total that match (and meet ``conditions`` and
    the ``extra`` SQLAlchemy conditions over ``CustomerState``)."""
    current = ensure_fresh(db, workspace_id)
    at = int((now or datetime.now(UTC)).timestamp())
    statement, counted = _select(db, workspace_id, query, at, conditions, extra)
    card = _scorecard_of(db, workspace_id)
    page = statement.limit(query.per_page).offset((query.page - 1) * query.per_page)
    with db.session() as session:
        total = int(session.scalar(counted) or 0)
        rows = session.execute(page).all()
    return CustomerList(
        items=[_row(r, card) for r in rows],
        total=total,
        page=query.page,
        per_page=query.per_page,
        refreshing=not current,
    )


CSV_COLUMNS = (
    "id", "user_id", "email", "name", "stage", "health_state", "health_score", "p_alive", "clv",
    "last_seen_at", "reasons", "rfm_segment", "purchases", "revenue",
)  # fmt: skip


def export_csv(
    db: Database, workspace_id: int, query: CustomerQuery, *, now: datetime | None = None,
    conditions: Sequence[Condition] = (), extra: Sequence[ColumnElement[bool]] = (),
) -> Iterator[str]:  # fmt: skip
    """Every customer the query matches (all pages), as CSV text chunks."""
    ensure_fresh(db, workspace_id)
    at = int((now or datetime.now(UTC)).timestamp())
    statement = _select(db, workspace_id, query, at, conditions, extra)[0].limit(EXPORT_LIMIT)
    card = _scorecard_of(db, workspace_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    with db.session() as session:
        for raw in session.execute(statement).yield_per(2_000):
            row = _row(raw, card)
            writer.writerow([
                row.id, row.user_id or "", row.email or "", row.name or "", row.stage or "",
                row.health_state or "", "" if row.health_score is None else row.health_score,
                "" if row.p_alive is None else row.p_alive, "" if row.clv is None else row.clv,
                row.last_seen_at.isoformat() if row.last_seen_at else "", "; ".join(row.reasons),
                row.rfm_segment or "", row.purchases, row.revenue,
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
    ensure_fresh(db, workspace_id)
    at = int((now or datetime.now(UTC)).timestamp())
    statement = customer_filter(db, workspace_id, CustomerQuery(), at, conditions)
    with db.session() as session:
        return [int(r) for r in session.scalars(statement.order_by(State.customer_id))]
