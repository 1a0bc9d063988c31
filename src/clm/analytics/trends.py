"""Customers per stage and per health state over time: the count at the end of each day, week
or month in a range, read from the exact stage history (``stage_transitions``) and health
history (``health_history``), in one grouped query each.

The count of a stage at instant *p* is the number of customers whose latest transition at or
before *p* went into it (what ``stage_counts`` gives for one instant). Rather than one such
query per point, every transition is a +1 to its ``to_stage`` and a -1 to its ``from_stage``
(the stage it left, which the history stores), bucketed by the first point at or after it;
the running sum over the buckets is then the count at each point. Health snapshots carry no
previous state, so a window (``LAG`` over each customer's snapshots) supplies it; the same
running sum gives the count per state and the mean score.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, and_, case, cast, func, literal, select, union_all
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from clm.errors import FieldError, ValidationError
from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.health import STATE_LABELS
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.loader import load_stage_model
from clm.store.engine import Database
from clm.store.models import HealthSnapshot, LifecycleDefinition, StageTransition

Grain = Literal["day", "week", "month"]
DAY = 86_400
MAX_POINTS = 400  # a chart of more points than pixels says nothing more
DEFAULT_SPAN_DAYS = 365


class TrendQuery(BaseModel):
    """The range and grain of the over-time charts (dates are UTC days, both included)."""

    model_config = ConfigDict(extra="forbid")

    since: date | None = None
    until: date | None = None
    grain: Grain = "week"


class TrendPoint(BaseModel):
    """One point of the charts: the counts at ``at`` (the end of the day, week or month
    ``label`` names; the last point of a range ending today is now)."""

    label: str
    at: datetime


class Trends(BaseModel):
    since: date
    until: date
    grain: Grain
    points: list[TrendPoint]
    stage_model: str
    stages: Annotated[dict[str, list[int]], Field(description="stage -> count at each point")]
    health: Annotated[dict[str, list[int]], Field(description="state -> count at each point")]
    health_labels: dict[str, str]
    mean_health: Annotated[list[float | None], Field(description="mean score at each point")]


def _points(query: TrendQuery, now: datetime) -> tuple[date, date, list[tuple[str, int]]]:
    """(since, until, [(label, instant)]): each instant the last second of its period, the
    last one clipped to ``now``."""
    until = query.until or now.date()
    since = query.since or until - timedelta(days=DEFAULT_SPAN_DAYS)
    if since > until:
        raise ValidationError("Invalid range", [FieldError(("since",), "must not be after until")])
    end = min(int(now.timestamp()), _midnight(until + timedelta(days=1)) - 1)
    ends: list[tuple[str, date]] = []  # (label, the first day after the period)
    day = since
    while day <= until:
        if query.grain == "day":
            nxt, label = day + timedelta(days=1), day.isoformat()
        elif query.grain == "week":  # weeks start on Monday (ISO)
            nxt = day + timedelta(days=7 - day.weekday())
            label = (nxt - timedelta(days=7)).isoformat()
        else:
            nxt = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            label = f"{day.year:04d}-{day.month:02d}"
        ends.append((label, nxt))
        day = nxt
        if len(ends) > MAX_POINTS:
            problem = f"at most {MAX_POINTS} points: a longer grain or a shorter range"
            raise ValidationError("Too many points", [FieldError(("grain",), problem)])
    points = [(label, min(end, _midnight(nxt) - 1)) for label, nxt in ends]
    # a range reaching past now ends at now: drop the points that would repeat it
    kept = [p for p in points if p[1] < end] + [p for p in points if p[1] >= end][:1]
    return since, until, kept


def _midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _bucket(
    ts: ColumnElement[int] | InstrumentedAttribute[int], instants: Sequence[int], grain: Grain
) -> ColumnElement[int]:
    """SQL: the index of the first point at or after ``ts`` (0 for everything before)."""
    first = instants[0]
    if grain == "month" or len(instants) < 3:
        whens = [(ts <= at, literal(n)) for n, at in enumerate(instants[:-1])]
        return case(*whens, else_=literal(len(instants) - 1)) if whens else literal(0)
    step = DAY if grain == "day" else 7 * DAY
    # the regular points are first + k * step; the last may be clipped to now, which only
    # moves it earlier, and later changes are filtered out by the caller
    k = cast((ts - first + (step - 1)) // step, Integer)
    last = len(instants) - 1
    return case((ts <= first, literal(0)), (k > last, literal(last)), else_=k)


def _running(
    deltas: list[tuple[int, str | None, float, float]], names: Sequence[str], size: int
) -> tuple[dict[str, list[int]], list[float]]:
    """Running sums of (bucket, name, count delta, score delta) rows: counts per name at each
    point, and the summed score at each point."""
    per_bucket: dict[str, list[float]] = {name: [0.0] * size for name in names}
    score = [0.0] * size
    for bucket, name, count, total in deltas:
        if name is None:
            continue
        per_bucket.setdefault(name, [0.0] * size)[int(bucket)] += count
        score[int(bucket)] += total
    counts: dict[str, list[int]] = {}
    for name, steps in per_bucket.items():
        running, out = 0.0, []
        for step in steps:
            running += step
            out.append(round(running))
        counts[name] = out
    running, sums = 0.0, []
    for step in score:
        running += step
        sums.append(running)
    return counts, sums


_MODELS: dict[tuple[str, int], CompiledModel] = {}


def _active_row(db: Database, workspace_id: int, kind: str) -> tuple[int, str] | None:
    with db.session() as session:
        row = session.execute(
            select(LifecycleDefinition.id, LifecycleDefinition.source)
            .where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.kind == kind,
                LifecycleDefinition.active.is_(True),
            )
            .order_by(LifecycleDefinition.id.desc())
            .limit(1)
        ).first()
    return (int(row.id), str(row.source)) if row is not None else None


def active_stage_model(db: Database, workspace_id: int) -> tuple[int, CompiledModel]:
    """The active stage model's id and compiled form (versions are immutable: compiled once
    per process, not parsed from YAML on every request)."""
    row = _active_row(db, workspace_id, "stages")
    if row is None:
        info, model = get_stage_model(db, workspace_id)  # installs the shipped model
        return info.id, model
    key = (str(db.engine.url), row[0])
    if key not in _MODELS:
        if len(_MODELS) > 256:
            _MODELS.clear()
        _MODELS[key] = load_stage_model(row[1])
    return row[0], _MODELS[key]


def active_scorecard_id(db: Database, workspace_id: int) -> int:
    """The active scorecard's id: one indexed read (its YAML is not needed here)."""
    row = _active_row(db, workspace_id, "health")
    return row[0] if row is not None else get_scorecard(db, workspace_id)[0]


def _stage_deltas(
    db: Database, definition_id: int, instants: Sequence[int], grain: Grain
) -> list[tuple[int, str | None, float, float]]:
    t = StageTransition
    last = instants[-1]
    where = and_(t.definition_id == definition_id, t.ts <= last)
    bucket = _bucket(t.ts, instants, grain).label("bucket")
    into = select(bucket, t.to_stage.label("name"), literal(1).label("sign")).where(where)
    out = select(bucket, t.from_stage.label("name"), literal(-1).label("sign")).where(
        where, t.from_stage.is_not(None)
    )
    moves = union_all(into, out).subquery()
    grouped = select(moves.c.bucket, moves.c.name, func.sum(moves.c.sign)).group_by(
        moves.c.bucket, moves.c.name
    )
    with db.session() as session:
        return [(int(b), n, float(s), 0.0) for b, n, s in session.execute(grouped)]


def _health_deltas(
    db: Database, definition_id: int, instants: Sequence[int], grain: Grain
) -> list[tuple[int, str | None, float, float]]:
    h = HealthSnapshot
    order = (h.ts, h.id)
    ordered = (
        select(
            h.ts,
            h.state,
            h.score,
            func.lag(h.state).over(partition_by=h.customer_id, order_by=order).label("before"),
            func.lag(h.score).over(partition_by=h.customer_id, order_by=order).label("was"),
        )
        .where(h.definition_id == definition_id, h.ts <= instants[-1])
        .subquery()
    )
    bucket = _bucket(ordered.c.ts, instants, grain).label("bucket")
    into = select(
        bucket, ordered.c.state.label("name"), literal(1).label("sign"),
        (ordered.c.score - func.coalesce(ordered.c.was, 0.0)).label("score"),
    )  # fmt: skip
    out = select(
        bucket, ordered.c.before.label("name"), literal(-1).label("sign"),
        literal(0.0).label("score"),
    ).where(ordered.c.before.is_not(None))  # fmt: skip
    moves = union_all(into, out).subquery()
    grouped = select(
        moves.c.bucket, moves.c.name, func.sum(moves.c.sign), func.sum(moves.c.score)
    ).group_by(moves.c.bucket, moves.c.name)
    with db.session() as session:
        return [(int(b), n, float(s), float(v or 0)) for b, n, s, v in session.execute(grouped)]


def trends(
    db: Database, workspace_id: int, query: TrendQuery | None = None, *, now: datetime | None = None
) -> Trends:
    """Customers per stage (active stage model) and per health state (active scorecard) at
    the end of each period of the range, and the mean health score."""
    query = query or TrendQuery()
    now = now or datetime.now(UTC)
    since, until, points = _points(query, now)
    instants = [at for _, at in points]
    stage_id, model = active_stage_model(db, workspace_id)
    health_id = active_scorecard_id(db, workspace_id)
    names = [s.name for s in model.stages]
    stages, _ = _running(_stage_deltas(db, stage_id, instants, query.grain), names, len(points))
    health, score = _running(
        _health_deltas(db, health_id, instants, query.grain), list(STATE_LABELS), len(points)
    )
    scored = [sum(health[s][n] for s in health) for n in range(len(points))]
    return Trends(
        since=since,
        until=until,
        grain=query.grain,
        points=[
            TrendPoint(label=label, at=datetime.fromtimestamp(at, UTC)) for label, at in points
        ],
        stage_model=model.name,
        stages=stages,
        health=health,
        health_labels=dict(STATE_LABELS),
        mean_health=[
            round(score[n] / scored[n], 2) if scored[n] else None for n in range(len(points))
        ],
    )
