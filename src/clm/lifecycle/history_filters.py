"""The customer list's filters on the stage and health *history*, so every number of the
overview opens exactly the customers behind it: who stood in a stage or health state at a
past instant (a point of the over-time charts: ``as_of``), who moved into a stage or up or
down the stage model in a window (this week's movers: ``moved_since`` ... ``moved_until``),
and whose health score fell in it (``health_fell``).

Each filter reads the active stage model's transitions or the active scorecard's snapshots on
their ``(definition, ts)`` and ``(definition, customer, ts)`` indexes and is applied to the
stored state rows (``customer_states``): a window's moves as ``customer_id IN (...)``; the
instant's stage and health, and the falls, as a probe per row on SQLite (see
``history_conditions``).
The definitions are the charts' and the movers' own: a customer's stage at an instant is the
stage of their latest transition at or before it (``stage_counts``), their health the state
of their latest snapshot at or before it (the later written of two in one second); a mover
is counted as in ``clm.analytics.movers``, which reads the same selects (a customer first
scored in the window, by health or by a model's P(alive), is new there and here).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, desc, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from clm.errors import FieldError
from clm.store.models import CustomerState, Event, HealthSnapshot, Identity, StageTransition
from clm.store.own_events import MODEL_EVENTS

Direction = Literal["up", "down", "new"]
UP = ("forward", "skip", "reactivation")
DOWN = ("backward", "exit")


def direction_of(kind: str) -> Direction:
    """A transition's direction: up, down, or new (a customer's first stage)."""
    return "up" if kind in UP else "down" if kind in DOWN else "new"


class HistoryFilters(BaseModel):
    """Filters on the history. With ``as_of``, the list's ``stage`` and ``health_state`` mean
    "at that instant" instead of "now". ``moved_since`` opens a window (to ``moved_until``,
    default now) in which a customer moved (``moved``: up, down or new; ``moved_to``: into
    one of these stages) or, with ``health_fell``, whose score at its end is below the score
    at its start."""

    model_config = ConfigDict(extra="forbid")

    as_of: datetime | None = None
    moved_since: datetime | None = None
    moved_until: datetime | None = None
    moved: Direction | None = None
    moved_to: Annotated[list[str], Field(description="into one of these stages")] = []
    health_fell: bool = False

    def errors(self) -> list[FieldError]:
        problems = []
        window = (self.moved, self.moved_to, self.health_fell, self.moved_until)
        if self.moved_since is None and any(window):
            problems.append(FieldError(("query", "moved_since"), "needed by the other moved_*"))
        if self.moved_since and self.moved_until and self.moved_since >= self.moved_until:
            problems.append(FieldError(("query", "moved_until"), "must be after moved_since"))
        return problems

    @property
    def active(self) -> bool:
        return self.as_of is not None or self.moved_since is not None


def _ts(at: datetime) -> int:
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


def stage_at(definition_id: int, at: int, stages: list[str]) -> Select[Any]:
    """Customers whose latest transition at or before ``at`` went into one of ``stages``."""
    return _latest_in(StageTransition, "to_stage", definition_id, at, stages)


def health_at(definition_id: int, at: int, states: list[str]) -> Select[Any]:
    """Customers whose latest snapshot at or before ``at`` is in one of ``states``."""
    return _latest_in(HealthSnapshot, "state", definition_id, at, states)


def _latest_in(
    model: type[StageTransition] | type[HealthSnapshot], column: str, definition_id: int,
    at: int, values: list[str],
) -> Select[Any]:  # fmt: skip
    """Customers whose latest ``model`` row at or before ``at`` (ties by id) has ``column`` in
    ``values``: no newer row of theirs exists up to ``at``."""
    row, later = model, aliased(model)
    newer = (
        select(later.id)
        .where(
            later.definition_id == definition_id,
            later.customer_id == row.customer_id,
            later.ts <= at,
            or_(later.ts > row.ts, and_(later.ts == row.ts, later.id > row.id)),
        )
        .exists()
    )
    return select(row.customer_id).where(
        row.definition_id == definition_id, row.ts <= at, getattr(row, column).in_(values), ~newer
    )


def moved_in(
    definition_id: int, since: int, until: int, direction: Direction | None, stages: list[str]
) -> Select[Any]:
    """Customers with a transition in ``(since, until]`` of that direction and into one of
    ``stages`` (either left out: any)."""
    t = StageTransition
    where = [t.definition_id == definition_id, t.ts > since, t.ts <= until]
    if direction == "new":  # whatever is neither up nor down, as ``direction_of`` says
        where.append(t.kind.not_in(UP + DOWN))
    elif direction is not None:
        where.append(t.kind.in_(UP if direction == "up" else DOWN))
    if stages:
        where.append(t.to_stage.in_(stages))
    return select(t.customer_id).where(*where)


def first_model_score_in(since: int, until: int, customer_id: Any) -> ColumnElement[bool]:
    """True for a customer (``customer_id``: a column to correlate with) whose first model
    score (``MODEL_EVENTS``: P(alive)) is in ``(since, until]``: none before it, one in it.
    (In that order: once fits are regular, most customers have an earlier score, and one
    probe of the (identity, name, ts) index settles it.)"""
    e, i = Event, Identity

    def scored(*when: ColumnElement[bool]) -> ColumnElement[bool]:
        return (
            select(e.id)
            .join(i, i.id == e.identity_id)
            .where(i.customer_id == customer_id, e.name.in_(MODEL_EVENTS), *when)
            .exists()
        )

    return and_(~scored(e.ts <= since), scored(e.ts > since, e.ts <= until))


def score_changes(definition_id: int, since: int, until: int) -> Any:
    """Per customer with a snapshot in ``(since, until]`` and one at or before ``since``:
    (customer_id, score_before, score_now, change, state_before, state_now) of their latest
    snapshots at ``since`` and at ``until``: the movers' health falls and rises.

    Customers first scored in the window are new, not movers: a first health score has no
    "before", and a first model score (P(alive)) joins the scorecard's factors at once, so the
    first prediction fit would otherwise read as a week's fall for most repeat buyers."""
    h = HealthSnapshot
    touched = (
        select(h.customer_id)
        .where(h.definition_id == definition_id, h.ts > since, h.ts <= until)
        .group_by(h.customer_id)
        .subquery()
    )

    def latest(at: int) -> Any:
        inner = aliased(HealthSnapshot)
        return (
            select(inner.id)
            .where(
                inner.definition_id == definition_id,
                inner.customer_id == touched.c.customer_id,
                inner.ts <= at,
            )
            .order_by(desc(inner.ts), desc(inner.id))
            .limit(1)
            .scalar_subquery()
        )

    pairs = select(
        touched.c.customer_id, latest(since).label("before_id"), latest(until).label("now_id")
    ).subquery()
    before, now = aliased(HealthSnapshot), aliased(HealthSnapshot)
    first_scored = first_model_score_in(since, until, pairs.c.customer_id)
    return (
        select(
            pairs.c.customer_id,
            before.score.label("score_before"),
            now.score.label("score_now"),
            (now.score - before.score).label("change"),
            before.state.label("state_before"),
            now.state.label("state_now"),
        )
        .join(before, before.id == pairs.c.before_id)
        .join(now, now.id == pairs.c.now_id)
        # after the joins, so only the customers whose score moved are probed
        .where(or_(now.score == before.score, ~first_scored))
        .subquery()
    )


def latest_value(
    model: type[StageTransition] | type[HealthSnapshot], column: str, definition_id: int,
    customer_id: Any, at: int,
) -> Any:  # fmt: skip
    """The ``column`` of a customer's (``customer_id``: a column to correlate with) latest
    ``model`` row at or before ``at`` (ties: the later written), NULL if none: one seek
    backwards on the ``(definition, customer, ts)`` index."""
    row = aliased(model)
    return (
        select(getattr(row, column))
        .where(row.definition_id == definition_id, row.customer_id == customer_id, row.ts <= at)
        .order_by(desc(row.ts), desc(row.id))
        .limit(1)
        .scalar_subquery()
    )


def _health_fell(health_id: int, since: int, until: int, customer_id: Any) -> ColumnElement[bool]:
    """``score_changes``' falls as a condition on one customer: a snapshot in the window, and
    their latest score at ``until`` below the one at ``since`` (none before: no fall), unless
    first given a model score in the window."""
    h = HealthSnapshot
    touched = select(h.id).where(
        h.definition_id == health_id, h.customer_id == customer_id, h.ts > since, h.ts <= until
    )
    score_at = partial(latest_value, h, "score", health_id, customer_id)
    return and_(
        touched.exists(),  # first: most customers stop here
        score_at(until) < score_at(since),
        ~first_model_score_in(since, until, customer_id),
    )


def history_conditions(
    filters: HistoryFilters, stages: list[str], states: list[str], stage_id: int,
    health_id: int, now: datetime, dialect: str,
) -> list[ColumnElement[bool]]:  # fmt: skip
    """The filters as conditions on ``customer_states`` (with ``as_of``, ``stages`` and
    ``states`` are the list's stage and health filters, read at that instant instead).

    On SQLite the instant's stage and health and the health falls are probes per customer
    row (an index seek each): the page walks its sort's index and stops after its rows, and
    the count costs one seek a customer. As a set (``IN (...)``), SQLite built the whole
    set twice a page, for the count and again for the rows: at 100,000 customers 0.3-0.6 s
    of CPU instead of 0.1 s. PostgreSQL keeps the sets, which its planner joins in bulk
    (a correlated probe runs row by row there)."""
    found: list[ColumnElement[bool]] = []
    ids = CustomerState.customer_id
    probe = dialect == "sqlite"
    if filters.as_of is not None:
        at = _ts(filters.as_of)
        if stages:
            found.append(
                latest_value(StageTransition, "to_stage", stage_id, ids, at).in_(stages)
                if probe
                else ids.in_(stage_at(stage_id, at, stages))
            )
        if states:
            found.append(
                latest_value(HealthSnapshot, "state", health_id, ids, at).in_(states)
                if probe
                else ids.in_(health_at(health_id, at, states))
            )
    if filters.moved_since is not None:
        since = _ts(filters.moved_since)
        until = _ts(filters.moved_until or now)
        if filters.moved is not None or filters.moved_to or not filters.health_fell:
            found.append(ids.in_(moved_in(stage_id, since, until, filters.moved, filters.moved_to)))
        if filters.health_fell and probe:
            found.append(_health_fell(health_id, since, until, ids))
        elif filters.health_fell:
            changes = score_changes(health_id, since, until)
            found.append(ids.in_(select(changes.c.customer_id).where(changes.c.change < 0)))
    return found
