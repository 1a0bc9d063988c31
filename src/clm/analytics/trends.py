"""Customers per stage and per health state over time: the count at the end of each day, week
or month in a range, read from the exact stage history (``stage_transitions``) and health
history (``health_history``).

The count of a stage at instant *p* is the number of customers whose latest transition at or
before *p* went into it (what ``stage_counts`` gives for one instant). Rather than one such
query per point, every transition is a +1 to its ``to_stage`` and a -1 to its ``from_stage``
(the stage it left, which the history stores), summed per UTC day in one grouped query; the
running sum up to a point is the count at that point. Health snapshots carry no previous
state, so a window (``LAG`` over each customer's snapshots) supplies it, and the same running
sum gives the count per state and the summed score (hence the mean).

The daily changes cover the whole history, so one read serves every range and grain. They
are stored (``clm.analytics.kept``: one row, read at once after a restart) up to the newest
row ids of both histories; per request only the rows written since (a range of the primary
key) are read and added. Changes before the reading's day are summed per day, changes from
it on (including transitions scheduled ahead) keep their own second, so "now" is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import Select, and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.elements import ColumnElement

from clm.analytics.kept import Kind, readings_of
from clm.errors import FieldError, Unavailable, ValidationError
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
    exit_stages: list[str]
    stages: Annotated[dict[str, list[int]], Field(description="stage -> count at each point")]
    health: Annotated[dict[str, list[int]], Field(description="state -> count at each point")]
    health_labels: dict[str, str]
    mean_health: Annotated[list[float | None], Field(description="mean score at each point")]
    computed_at: Annotated[
        datetime | None, Field(description="when the stored days were read (None: just now)")
    ] = None
    current: Annotated[
        bool, Field(description="False: past days changed since; being refreshed")
    ] = True


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


def _today() -> int:
    return _midnight(datetime.now(UTC).date())


def _midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


@lru_cache(maxsize=64)
def _compiled(source: str) -> CompiledModel:
    """A stage model's compiled form, by its YAML text: a database's ids can repeat (a test
    database emptied and refilled, a demo rebuilt), its texts mean the same everywhere."""
    return load_stage_model(source)


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
    return row[0], _compiled(row[1])


def active_scorecard_id(db: Database, workspace_id: int) -> int:
    """The active scorecard's id: one indexed read (its YAML is not needed here)."""
    row = _active_row(db, workspace_id, "health")
    return row[0] if row is not None else get_scorecard(db, workspace_id)[0]


# (when, name, change in count, change in summed score): ``when`` is the last second of the
# change's UTC day for days before the cut, else the change's own second.
Delta = tuple[int, str, float, float]


def _when(ts: ColumnElement[int] | InstrumentedAttribute[int], cut: int) -> ColumnElement[int]:
    """SQL: a change's day (its last second) before ``cut``, its own second from ``cut`` on
    (today's changes and transitions scheduled ahead, which count from their second)."""
    return case((ts < cut, ts - ts % DAY + (DAY - 1)), else_=ts)


def _grouped(moves: Any) -> Select[Any]:
    return select(
        moves.c.at, moves.c.name, func.sum(moves.c.sign), func.sum(moves.c.score)
    ).group_by(moves.c.at, moves.c.name)


def stage_moves(
    db: Database, definition_id: int, cut: int, *, upto: int | None = None,
    after: int | None = None,
) -> list[Delta]:  # fmt: skip
    """Per day: +1 for each transition into a stage, -1 for the stage it left (which the row
    stores), of the transitions with ids up to ``upto`` or after ``after``, where given."""
    t = StageTransition
    where: list[Any] = [t.definition_id == definition_id]
    if upto is not None:
        where.append(t.id <= upto)
    if after is not None:
        where.append(t.id > after)
    at = _when(t.ts, cut).label("at")
    zero = literal(0.0).label("score")
    into = select(at, t.to_stage.label("name"), literal(1).label("sign"), zero).where(*where)
    out = select(at, t.from_stage.label("name"), literal(-1).label("sign"), zero).where(
        *where, t.from_stage.is_not(None)
    )
    with db.session() as session:
        rows = session.execute(_grouped(union_all(into, out).subquery()))
        return [(int(w), str(n), float(c), float(v or 0)) for w, n, c, v in rows]


def _health_changes(ordered: Any, cut: int) -> Select[Any]:
    at = _when(ordered.c.ts, cut).label("at")
    into = select(
        at, ordered.c.state.label("name"), literal(1).label("sign"),
        (ordered.c.score - func.coalesce(ordered.c.was, 0.0)).label("score"),
    )  # fmt: skip
    out = select(
        at, ordered.c.before.label("name"), literal(-1).label("sign"), literal(0.0).label("score")
    ).where(ordered.c.before.is_not(None))
    return _grouped(union_all(into, out).subquery())


def health_moves(
    db: Database, definition_id: int, cut: int, *, upto: int | None = None
) -> list[Delta]:
    """Per day: +1 for each snapshot's state, -1 for the same customer's previous state, and
    the change in their score (of the snapshots with ids up to ``upto``, where given)."""
    h = HealthSnapshot
    order = (h.ts, h.id)
    where = [h.definition_id == definition_id]
    if upto is not None:
        where.append(h.id <= upto)
    ordered = (
        select(
            h.ts,
            h.state,
            h.score,
            func.lag(h.state).over(partition_by=h.customer_id, order_by=order).label("before"),
            func.lag(h.score).over(partition_by=h.customer_id, order_by=order).label("was"),
        )
        .where(*where)
        .subquery()
    )
    with db.session() as session:
        rows = session.execute(_health_changes(ordered, cut))
        return [(int(w), str(n), float(c), float(v or 0)) for w, n, c, v in rows]


def new_health_moves(db: Database, definition_id: int, after: int, cut: int) -> list[Delta]:
    """``health_moves`` of the snapshots with ids after ``after`` only: each one's previous
    snapshot found on the customer index, not by a window over the whole history, so the
    snapshots written since a stored reading cost what they are."""
    h, p = HealthSnapshot, aliased(HealthSnapshot)

    def previous(column: Any) -> Any:
        return (
            select(column)
            .where(
                p.definition_id == definition_id,
                p.customer_id == h.customer_id,
                or_(p.ts < h.ts, and_(p.ts == h.ts, p.id < h.id)),
            )
            .order_by(p.ts.desc(), p.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    ordered = (
        select(
            h.ts,
            h.state,
            h.score,
            previous(p.state).label("before"),
            previous(p.score).label("was"),
        )
        .where(h.definition_id == definition_id, h.id > after)
        .subquery()
    )
    with db.session() as session:
        rows = session.execute(_health_changes(ordered, cut))
        return [(int(w), str(n), float(c), float(v or 0)) for w, n, c, v in rows]


def at_points(
    deltas: list[Delta], names: Sequence[str], instants: Sequence[int]
) -> tuple[dict[str, list[int]], list[float]]:
    """Counts per name and the summed score at each instant: the running sums of the changes
    at or before it."""
    counts: dict[str, list[int]] = {name: [] for name in names}
    running: dict[str, float] = dict.fromkeys(names, 0.0)
    score, scores = 0.0, list[float]()
    ordered = sorted(deltas)
    n = 0
    for instant in instants:
        while n < len(ordered) and ordered[n][0] <= instant:
            _, name, count, change = ordered[n]
            running[name] = running.get(name, 0.0) + count
            score += change
            n += 1
        for name, total in running.items():
            counts.setdefault(name, [0] * len(scores)).append(round(total))
        scores.append(score)
    return counts, scores


def history_version(db: Database, stage_id: int, health_id: int) -> tuple[int, ...]:
    """Newest id and row count of both histories (a recompute deletes and rewrites rows)."""
    tops, rows = _tops(db, stage_id, health_id)
    return (stage_id, health_id, tops[0], rows[0], tops[1], rows[1])


def _tops(db: Database, stage_id: int, health_id: int) -> tuple[list[int], list[int]]:
    """Newest id and row count of each history (one scan of its definition's index)."""
    tops, rows = [], []
    with db.session() as session:
        for model, definition_id in ((StageTransition, stage_id), (HealthSnapshot, health_id)):
            newest, count = session.execute(
                select(func.max(model.id), func.count()).where(model.definition_id == definition_id)
            ).one()
            tops.append(int(newest or 0))
            rows.append(int(count))
    return tops, rows


class StoredMoves(BaseModel):
    """The stored part of the charts: the changes of every transition and snapshot with an id
    up to ``tops`` (stage, health), ``rows`` of each, per day before ``cut`` (a UTC midnight)
    and per second from it. Rows written since have larger ids and are read per request; the
    reading stays exact while none at or below the tops is deleted or rewritten (the counts
    tell) and no new snapshot falls before a stored one of its customer (a late event: it
    would change the stored one's predecessor)."""

    cut: int
    tops: list[int]
    rows: list[int]
    stage: list[Delta]
    health: list[Delta]


PAST = Kind("trends", TypeAdapter(StoredMoves), wait=60.0, min_interval=60.0)


def stored_moves(db: Database, stage_id: int, health_id: int, cut: int) -> tuple[StoredMoves, Any]:
    """The histories' changes up to their newest rows now, and the version they were read at
    (the tops and counts, read first; rows written meanwhile are left to the next reading)."""
    tops, rows = _tops(db, stage_id, health_id)
    value = StoredMoves(
        cut=cut, tops=tops, rows=rows,
        stage=stage_moves(db, stage_id, cut, upto=tops[0]),
        health=health_moves(db, health_id, cut, upto=tops[1]),
    )  # fmt: skip
    return value, [tops, rows]


def stored_version(db: Database, stage_id: int, health_id: int, value: StoredMoves) -> Any:
    """The version of a stored reading's rows now: ``[tops, rows]`` as stored while they are
    intact (counted on the definitions' indexes) and no new snapshot precedes a stored one of
    its customer; anything else otherwise."""
    h, older = HealthSnapshot, aliased(HealthSnapshot)
    late = (
        select(h.id)
        .where(
            h.definition_id == health_id,
            h.id > value.tops[1],
            select(older.id)
            .where(
                older.definition_id == health_id,
                older.customer_id == h.customer_id,
                older.id <= value.tops[1],
                or_(older.ts > h.ts, and_(older.ts == h.ts, older.id > h.id)),
            )
            .exists(),
        )
        .limit(1)
    )
    counts = []
    with db.session() as session:
        for model, definition_id, top in (
            (StageTransition, stage_id, value.tops[0]), (HealthSnapshot, health_id, value.tops[1])
        ):  # fmt: skip
            counts.append(int(session.scalar(
                select(func.count()).where(model.definition_id == definition_id, model.id <= top)
            ) or 0))  # fmt: skip
        if counts != value.rows or session.scalar(late) is not None:
            return ["changed", counts]
    return [value.tops, value.rows]


def new_moves(
    db: Database, stage_id: int, health_id: int, tops: list[int], cut: int
) -> tuple[list[Delta], list[Delta]]:
    """The changes of the rows written after ``tops``: per day before ``cut``, per second
    from it (a range of each table's primary key)."""
    return (
        stage_moves(db, stage_id, cut, after=tops[0]),
        new_health_moves(db, health_id, tops[1], cut),
    )


def _past_params(stage_id: int, health_id: int) -> dict[str, int]:
    return {"stages": stage_id, "health": health_id}


def _past_reading(db: Database, stage_id: int, health_id: int, today: int) -> dict[str, Any]:
    """How the stored reading is checked (its rows' version now), read (with today's
    midnight as its cut) and renewed (a day over since: folds yesterday into days)."""
    return {
        "version": lambda value: stored_version(db, stage_id, health_id, value),
        "compute": lambda: stored_moves(db, stage_id, health_id, _today()),
        "renew": lambda found: found.value.cut < today,
    }


def store_past_moves(db: Database, workspace_id: int) -> bool:
    """Store the active histories' changes unless the stored ones are current (the live loop,
    ``clm demo``); True when it read them."""
    stage_id, _ = active_stage_model(db, workspace_id)
    health_id = active_scorecard_id(db, workspace_id)
    return readings_of(db).ensure(
        PAST, workspace_id, _past_params(stage_id, health_id),
        **_past_reading(db, stage_id, health_id, _today()),
    )  # fmt: skip


def _moves(
    db: Database, workspace_id: int, stage_id: int, health_id: int, now: datetime, fresh: bool
) -> tuple[list[Delta], list[Delta], datetime | None, bool]:
    """(stage changes, health changes, when the stored part was read, whether it is
    current): the stored reading's changes and those of the rows written since."""
    today = _midnight(now.date())
    if fresh:
        stored, _ = stored_moves(db, stage_id, health_id, today)
        read_at, current = None, True
    else:
        reading, current = readings_of(db).get(
            PAST, workspace_id, _past_params(stage_id, health_id),
            **_past_reading(db, stage_id, health_id, today),
        )  # fmt: skip
        if reading is None:
            raise Unavailable("The stage and health history are still being read; try again")
        stored, read_at = reading.value, reading.computed_at
    stage, health = new_moves(db, stage_id, health_id, stored.tops, today)
    return stored.stage + stage, stored.health + health, read_at, current


def trends(
    db: Database, workspace_id: int, query: TrendQuery | None = None, *, now: datetime | None = None
) -> Trends:
    """Customers per stage (active stage model) and per health state (active scorecard) at
    the end of each period of the range, and the mean health score. Without ``now`` the
    past days' changes come from the stored reading (``clm.analytics.kept``); with it, every
    day is read afresh."""
    query = query or TrendQuery()
    moment = now or datetime.now(UTC)
    since, until, points = _points(query, moment)
    instants = [at for _, at in points]
    stage_id, model = active_stage_model(db, workspace_id)
    health_id = active_scorecard_id(db, workspace_id)
    stage_deltas, health_deltas, read_at, current = _moves(
        db, workspace_id, stage_id, health_id, moment, fresh=now is not None
    )
    stages, _ = at_points(stage_deltas, [s.name for s in model.stages], instants)
    health, score = at_points(health_deltas, list(STATE_LABELS), instants)
    scored = [sum(health[s][n] for s in health) for n in range(len(points))]
    return Trends(
        since=since,
        until=until,
        grain=query.grain,
        points=[
            TrendPoint(label=label, at=datetime.fromtimestamp(at, UTC)) for label, at in points
        ],
        stage_model=model.name,
        exit_stages=[s.name for s in model.stages if s.exit],
        stages=stages,
        health=health,
        health_labels=dict(STATE_LABELS),
        mean_health=[
            round(score[n] / scored[n], 2) if scored[n] else None for n in range(len(points))
        ],
        computed_at=read_at,
        current=current,
    )
