"""Each customer's current state, stored: the row the customer list and the counters read.

Stage, health, activity, purchases, the latest prediction and the RFM segment of every live
customer, one row each in ``customer_states``, so that a list of 100,000 customers filters,
sorts and counts on an index instead of re-deriving each column from the event log.

The rows are a cache of the log and of the derived tables (``stage_transitions``,
``health_scores``), recomputable at any time: ``rebuild_state`` rewrites every row of a
workspace, and ``refresh_state`` (called by the live loop after each pass and by a prediction
refit) only the rows of the customers whose events arrived since it last looked (an event-id
cursor), plus any it is told about (health re-scored by the clock). Both run the same statement
over chunks of customers, so the incremental path equals the rebuild by construction; the
property tests check it. Each chunk is computed outside any write transaction and written in a
short one of its own: on SQLite an ingestion batch waits for one chunk's write at most, never
for a whole catch-up (a minute at 100,000 customers; ``benchmarks/web/catchup.py``). Readers
call ``ensure_fresh``
first: a backlog of a few thousand events is caught up on the spot (a customer written a moment
ago is listed), a bigger one (an import) on a background thread of the reading process while
the read serves the stored rows, marked as refreshing.

Definitions, as of the moment of the refresh:

* ``stage``/``stage_since``: the active stage model's latest transition at or before now;
* ``health_state``/``health_score``: the stored current score under the active scorecard;
* ``first_seen_ts``/``last_seen_ts``: the customer's oldest and newest touchpoint (an event
  that is neither CLM's own nor a model's score, ``clm.store.own_events``);
* ``purchases``, ``revenue`` (finite amounts only), ``last_purchase_ts``: their own
  ``Order Completed`` events;
* ``p_alive``, ``clv_12m``, ``expected_purchases_90d``, ``prediction_fit_id``: their newest
  ``Prediction Scored`` event;
* ``rfm_segment``: the RFM segment of ``clm.analytics.segments`` among all buyers. Quintiles
  are relative to the population, so one customer's purchase can move another's segment: the
  segments of every row are recomputed (one window query over this table, no event scan)
  whenever a refresh saw a purchase or a merge, and never otherwise (nothing else moves them).

A change of the active stage model or scorecard, or of ``STATE_VERSION`` (a change of these
definitions in code), makes the next refresh a rebuild. Erasure and retention purges, which
delete events, call ``invalidate_state`` for the same effect.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Numeric,
    Select,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.event_counts import (
    EVENTS_CURSOR,
    STATE_VERSION,
    VERSION_CURSOR,
    store_tally,
    tally_events,
)
from clm.lifecycle.health import STATE_LABELS
from clm.lifecycle.health_counts import health_counts
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.queries import stage_counts
from clm.predictions.repository import PURCHASE_EVENT, SCORE_EVENT
from clm.store.engine import Database
from clm.store.locks import one_at_a_time
from clm.store.models import (
    Customer,
    CustomerState,
    EngageCursor,
    Event,
    HealthScore,
    Identity,
    LifecycleDefinition,
    StageTransition,
    Timestamp,
    table_of,
)
from clm.store.own_events import MODEL_EVENTS, own_event_clause
from clm.store.settled import settled_top

# More cursors (see ``event_counts``): the definitions the rows were computed under.
STAGES_CURSOR, HEALTH_CURSOR = "state.stages", "state.health"
CHUNK = 500  # customer rows per write transaction (and ids per statement)
COMPUTE = 2_000  # customers computed per read (well under every driver's parameter limit)
REBUILD_AT = 20_000  # touched customers beyond which one rebuild is cheaper than the chunks
READ_REFRESH = 5_000  # new events a read catches up on itself (``ensure_fresh``)
READ_WAIT = 10.0  # seconds a read waits for rows never built (100,000 customers take 1-2 min)
EXTENSION = "clm.lifecycle.current_state"  # the background refresher's name in ``db.extensions``
_REFRESHERS = threading.Lock()
log = logging.getLogger("clm.lifecycle.current_state")

SEGMENTS = (
    "Champions", "Loyal", "Can't lose them", "At risk", "New", "Promising",
    "Potential loyalists", "Need attention", "About to sleep", "Hibernating", "Lost",
)  # fmt: skip


@dataclass(frozen=True)
class StateReport:
    """What a refresh or rebuild wrote."""

    workspace_id: int
    rebuilt: bool
    customers: int  # rows written
    removed: int  # rows of customers merged away
    rfm_refreshed: bool
    seconds: float


def active_definition_id(db: Database, workspace_id: int, kind: str) -> int:
    """The active stage model's or scorecard's id: one indexed read (versions are immutable);
    installs the default when the workspace has none."""
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


def _finite(amount: Any) -> Any:
    """``amount`` where it is a number, else NULL (an ``inf`` or ``NaN`` stored before the edge
    refused them would make every sum non-finite)."""
    return case((amount.between(-sys.float_info.max, sys.float_info.max), amount), else_=None)


def _touchpoint(event: Any = Event) -> ColumnElement[bool]:
    return and_(
        ~own_event_clause(event.channel), func.coalesce(event.name, "").not_in(MODEL_EVENTS)
    )


def _state_rows(
    workspace_id: int,
    now_ts: int,
    stage_id: int,
    health_id: int,
    ids: Sequence[int] | None,
    updated_at: datetime,
) -> Select[Any]:
    """The rows of ``customer_states`` as one statement (``ids``: only these customers)."""
    mine = Identity.workspace_id == workspace_id
    if ids is not None:
        mine = and_(mine, Identity.customer_id.in_(ids))
    touch = _touchpoint()
    bought = and_(Event.name == PURCHASE_EVENT, ~own_event_clause(Event.channel))
    activity = (
        select(
            Identity.customer_id.label("customer_id"),
            func.min(case((touch, Event.ts))).label("first_seen"),
            func.max(case((touch, Event.ts))).label("last_seen"),
            func.sum(case((bought, 1), else_=0)).label("purchases"),
            func.sum(case((bought, _finite(Event.revenue)), else_=None)).label("revenue"),
            func.max(case((bought, Event.ts))).label("last_purchase"),
        )
        .join(Event, Event.identity_id == Identity.id)
        .where(mine)
        .group_by(Identity.customer_id)
        .subquery("activity")
    )
    stage_where = [StageTransition.definition_id == stage_id, StageTransition.ts <= now_ts]
    if ids is not None:
        stage_where.append(StageTransition.customer_id.in_(ids))
    stages = (
        select(
            StageTransition.customer_id,
            StageTransition.to_stage,
            StageTransition.ts,
            func.row_number()
            .over(
                partition_by=StageTransition.customer_id,
                order_by=(StageTransition.ts.desc(), StageTransition.id.desc()),
            )
            .label("rank"),
        )
        .where(*stage_where)
        .subquery("stages")
    )
    scores = (
        select(
            Identity.customer_id.label("customer_id"),
            cast(Event.properties["p_alive"].as_float(), Float).label("p_alive"),
            cast(Event.properties["clv_12m"].as_float(), Float).label("clv_12m"),
            cast(Event.properties["expected_purchases_90d"].as_float(), Float).label("expected"),
            Event.properties["fit_id"].as_string().label("fit_id"),
            func.row_number()
            .over(partition_by=Identity.customer_id, order_by=(Event.ts.desc(), Event.id.desc()))
            .label("rank"),
        )
        .join(Event, Event.identity_id == Identity.id)
        .where(mine, Event.workspace_id == workspace_id, Event.name == SCORE_EVENT)
        .subquery("scores")
    )
    customers = and_(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None))
    if ids is not None:
        customers = and_(customers, Customer.id.in_(ids))
    return (
        select(
            Customer.id,
            literal(workspace_id).label("workspace_id"),
            stages.c.to_stage,
            stages.c.ts,
            literal(stage_id).label("stage_definition_id"),
            HealthScore.state,
            HealthScore.score,
            literal(health_id).label("health_definition_id"),
            activity.c.first_seen,
            activity.c.last_seen,
            func.coalesce(activity.c.purchases, 0),
            func.coalesce(activity.c.revenue, 0.0),
            activity.c.last_purchase,
            scores.c.p_alive,
            scores.c.clv_12m,
            scores.c.expected,
            scores.c.fit_id,
            literal(None).label("rfm_segment"),
            literal(updated_at, Timestamp).label("updated_at"),
            func.lower(
                func.coalesce(Customer.user_id, "")
                + " "
                + func.coalesce(Customer.email, "")
                + " "
                + func.coalesce(Customer.traits["name"].as_string(), "")
            ).label("search_text"),
        )
        .select_from(Customer)
        .outerjoin(activity, activity.c.customer_id == Customer.id)
        .outerjoin(stages, and_(stages.c.customer_id == Customer.id, stages.c.rank == 1))
        .outerjoin(scores, and_(scores.c.customer_id == Customer.id, scores.c.rank == 1))
        .outerjoin(
            HealthScore,
            and_(HealthScore.definition_id == health_id, HealthScore.customer_id == Customer.id),
        )
        .where(customers)
    )


COLUMNS = (
    "customer_id", "workspace_id", "stage", "stage_since", "stage_definition_id",
    "health_state", "health_score", "health_definition_id", "first_seen_ts", "last_seen_ts",
    "purchases", "revenue", "last_purchase_ts", "p_alive", "clv_12m", "expected_purchases_90d",
    "prediction_fit_id", "rfm_segment", "updated_at", "search_text",
)  # fmt: skip


def _score(rank: Any, n: Any) -> Any:
    """A quintile score 1-5 from a 1-based rank, as ``clm.analytics.segments._score`` does from
    its 0-based one: ``rank * 5 // n + 1``."""
    return cast((rank - 1) * 5 // n + 1, Integer)


def segment_case(r: Any, fm: Any) -> Any:
    """``clm.analytics.segments.segment_of`` as a SQL ``CASE`` (tests hold the two equal)."""
    return case(
        (and_(r == 5, fm >= 4), SEGMENTS[0]),
        (and_(r >= 3, fm >= 4), SEGMENTS[1]),
        (and_(r <= 2, fm == 5), SEGMENTS[2]),
        (and_(r <= 2, fm >= 3), SEGMENTS[3]),
        (and_(r == 5, fm == 1), SEGMENTS[4]),
        (and_(r == 4, fm == 1), SEGMENTS[5]),
        (r >= 4, SEGMENTS[6]),
        (and_(r == 3, fm == 3), SEGMENTS[7]),
        (r == 3, SEGMENTS[8]),
        (r == 2, SEGMENTS[9]),
        else_=SEGMENTS[10],
    )


def _rfm_changes(session: Session, workspace_id: int) -> list[tuple[int, str | None]]:
    """The rows whose RFM segment differs from the one their stored purchases give: recency
    ranks the last purchase, frequency the count, monetary the revenue, each among all buyers
    of the workspace; a customer who never bought has none. Read before the writes (one
    window query over this table), written in chunks."""
    state = CustomerState
    n = func.count().over()
    ranked = (
        select(
            state.customer_id,
            _score(func.rank().over(order_by=state.last_purchase_ts), n).label("r"),
            _score(func.rank().over(order_by=state.purchases), n).label("f"),
            _score(func.rank().over(order_by=func.round(cast(state.revenue, Numeric), 2)), n).label(
                "m"
            ),  # in cents, as the report ranks it
        )
        .where(state.workspace_id == workspace_id, state.purchases > 0)
        .subquery("ranked")
    )
    fm = cast((ranked.c.f + ranked.c.m + 1) // 2, Integer)
    segments = select(ranked.c.customer_id, segment_case(ranked.c.r, fm).label("segment")).subquery(
        "segments"
    )
    want = dict(session.execute(select(segments.c.customer_id, segments.c.segment)).all())
    rows = session.execute(
        select(state.customer_id, state.rfm_segment).where(state.workspace_id == workspace_id)
    )  # apart: SQLite would evaluate the window query again for each row of a join
    return [(int(c), want.get(c)) for c, old in rows if old != want.get(c)]


def _cursor_row(session: Session, workspace_id: int, name: str, lock: bool) -> EngageCursor:
    query = select(EngageCursor).where(
        EngageCursor.workspace_id == workspace_id, EngageCursor.consumer == name
    )
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        # Two first refreshes at once (two reads of a new workspace) both find no row: the
        # second insert loses the unique race inside its savepoint and reads the winner's row.
        try:
            with session.begin_nested():
                session.add(EngageCursor(workspace_id=workspace_id, consumer=name, last_event_id=0))
        except IntegrityError:
            pass
        row = session.scalar(query.with_for_update() if lock else query)
        assert row is not None
    return row


def _top_event_id(session: Session, workspace_id: int) -> int:
    found = session.scalar(select(func.max(Event.id)).where(Event.workspace_id == workspace_id))
    return int(found or 0)


def _chunks(ids: Sequence[int], size: int | None = None) -> Iterable[list[int]]:
    size = size or CHUNK
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


class _Invalidated(Exception):
    """The rows were invalidated (an erasure, a retention purge) while a refresh ran."""


def rebuild_state(db: Database, workspace_id: int, *, now: datetime | None = None) -> StateReport:
    """Recompute every customer's row of a workspace from the log, as of ``now``."""
    return refresh_state(db, workspace_id, now=now, rebuild=True)


def refresh_state(
    db: Database,
    workspace_id: int,
    *,
    now: datetime | None = None,
    customer_ids: Iterable[int] = (),
    rebuild: bool = False,
) -> StateReport:
    """Bring the rows up to date as of ``now``: those of customers with events since the last
    refresh, of ``customer_ids`` (e.g. re-scored by the clock), and remove merged-away ones.

    All customers instead (a rebuild) when asked, when the rows were never built, were
    computed under another stage model, scorecard or ``STATE_VERSION``, or when too many
    customers are touched. Waits for a refresh of the workspace running elsewhere.
    """
    # One refresh of a workspace at a time, across processes (``clm serve``'s catch-up and
    # ``clm worker``'s live loop): two refreshes' chunks interleaved could leave an older
    # computation of a row over a newer one.
    with one_at_a_time(db, "state", workspace_id):
        return _refresh(db, workspace_id, now, customer_ids, rebuild)


def _refresh(
    db: Database,
    workspace_id: int,
    now: datetime | None,
    customer_ids: Iterable[int],
    rebuild: bool,
) -> StateReport:
    """The refresh, under the workspace's refresh lock, in bounded write transactions.

    Everything is read first, outside any write transaction: the cursors, the customers to
    rewrite, the event tally; then ``COMPUTE`` customers at a time are computed in a read,
    and written ``CHUNK`` at a time, each chunk in a write transaction of its own, so an
    ingestion batch waits for SQLite's single writer lock one chunk's write at most; then
    the changed RFM segments, in chunks; and last the tally and the cursors, in one short
    transaction. The cursors move only then, so a refresh that fails midway leaves them where
    they were and the next one rewrites the same customers again. An event arriving meanwhile
    has a higher id than the cursor will hold: the next refresh rewrites its customer. A
    chunk written after an invalidation (an erasure) could hold erased data: each chunk
    checks the mark under its write lock and the refresh stops there, the rebuild due.
    """
    clock = time.perf_counter()
    at = now or datetime.now(UTC)
    now_ts = int(at.timestamp())
    stage_id = active_definition_id(db, workspace_id, "stages")
    health_id = active_definition_id(db, workspace_id, "health")
    marks = _start_marks(db, workspace_id)
    after, version = marks[EVENTS_CURSOR], marks[VERSION_CURSOR]
    stale = (
        version != STATE_VERSION  # 0 or below: never built, invalidated
        or marks[STAGES_CURSOR] != stage_id
        or marks[HEALTH_CURSOR] != health_id
    )
    # Only as far as every smaller id is committed: a later commit under the cursor would
    # never be counted (None: a writer may hold a smaller id; the cursor stays).
    settled = settled_top(db, "events", workspace_id=workspace_id)
    top = max(settled or 0, after)
    orphans: list[int] = []
    with db.session() as session:
        if not (rebuild or stale):
            touched = _customers_with_events(session, workspace_id, after, top)
            ids = sorted({*touched, *(int(c) for c in customer_ids)})
            rebuild = len(ids) > REBUILD_AT
        everyone = rebuild or stale
        if everyone:
            ids, orphans = _everyone(session, workspace_id)
        rfm = everyone or _purchase_since(session, workspace_id, after, top)
        tally = tally_events(session, workspace_id, 0 if everyone else after, top)
    written = removed = 0
    try:
        for block in _chunks(ids, COMPUTE):
            with db.session() as session:  # computed outside the write transaction
                computed = session.execute(
                    _state_rows(workspace_id, now_ts, stage_id, health_id, block, at)
                ).all()
            by_customer = {int(row[0]): row for row in computed}
            for chunk in _chunks(block):
                rows = [by_customer[c] for c in chunk if c in by_customer]
                with db.transaction() as session:
                    removed += _write_chunk(session, chunk, rows)
                    _check_version(session, workspace_id, version)
                written += len(rows)
        for chunk in _chunks(orphans):  # rows of customers gone (merged away, deleted)
            with db.transaction() as session:
                removed += _delete_rows(session, CustomerState.customer_id.in_(chunk))
                _check_version(session, workspace_id, version)
        rfm = rfm or removed > 0
        if rfm:
            with db.session() as session:
                changes = _rfm_changes(session, workspace_id)
            for start in range(0, len(changes), CHUNK):
                with db.transaction() as session:
                    _write_segments(session, changes[start : start + CHUNK])
                    _check_version(session, workspace_id, version)
        with db.transaction() as session:
            _check_version(session, workspace_id, version)
            events = _cursor_row(session, workspace_id, EVENTS_CURSOR, lock=True)
            if events.last_event_id != after:  # another refresh ran without the lock
                raise _Invalidated
            store_tally(session, workspace_id, tally, replace=everyone)
            events.last_event_id = top
            for name, value in (
                (VERSION_CURSOR, STATE_VERSION),
                (STAGES_CURSOR, stage_id),
                (HEALTH_CURSOR, health_id),
            ):
                _cursor_row(session, workspace_id, name, lock=False).last_event_id = value
    except _Invalidated:
        log.info("state refresh stopped: invalidated", extra={"workspace_id": workspace_id})
    return StateReport(
        workspace_id=workspace_id,
        rebuilt=everyone,
        customers=written,
        removed=removed,
        rfm_refreshed=rfm,
        seconds=round(time.perf_counter() - clock, 3),
    )


def _start_marks(db: Database, workspace_id: int) -> dict[str, int]:
    """The four cursors' values, creating the missing rows (a short write, once)."""
    names = (EVENTS_CURSOR, VERSION_CURSOR, STAGES_CURSOR, HEALTH_CURSOR)
    with db.session() as session:
        found = _cursor_values(session, workspace_id, names)
    if len(found) < len(names):
        with db.transaction() as session:
            for name in names:
                _cursor_row(session, workspace_id, name, lock=False)
        with db.session() as session:
            found = _cursor_values(session, workspace_id, names)
    return found


def _cursor_values(session: Session, workspace_id: int, names: Sequence[str]) -> dict[str, int]:
    rows = session.execute(
        select(EngageCursor.consumer, EngageCursor.last_event_id).where(
            EngageCursor.workspace_id == workspace_id, EngageCursor.consumer.in_(names)
        )
    )
    return {str(name): int(value) for name, value in rows}


def _check_version(session: Session, workspace_id: int, version: int) -> None:
    """Stop (roll back) a refresh whose rows were invalidated since it started. Last in a
    chunk's transaction, locking the mark on PostgreSQL: an invalidation commits either
    before (seen here) or after this chunk; an erasure that deleted a row of the chunk first
    is waited for, never waits for us (no deadlock)."""
    found = session.scalar(
        select(EngageCursor.last_event_id)
        .where(EngageCursor.workspace_id == workspace_id, EngageCursor.consumer == VERSION_CURSOR)
        .with_for_update()
    )
    if found is not None and int(found) != version:
        raise _Invalidated


def _everyone(session: Session, workspace_id: int) -> tuple[list[int], list[int]]:
    """Every live customer of the workspace, and the stored rows of customers not live."""
    live = [
        int(c)
        for c in session.scalars(
            select(Customer.id)
            .where(Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None))
            .order_by(Customer.id)
        )
    ]
    stored = session.scalars(
        select(CustomerState.customer_id).where(CustomerState.workspace_id == workspace_id)
    )
    keep = set(live)
    return live, sorted(int(c) for c in stored if int(c) not in keep)


def _write_chunk(session: Session, chunk: list[int], rows: Sequence[Any]) -> int:
    """Make the chunk's stored rows ``rows``; returns the rows of merged-away customers removed.

    A stored row is updated in place, its RFM segment kept (segments move only with a
    purchase or a merge, and then the refresh recomputes them all) and its search text set
    only when it changed: the search index's trigger and the table's other indexes are not
    rewritten for nothing (a delete and insert of 500 rows took 0.4 s under SQLite's write
    lock, this 0.08 s). New customers' rows are inserted; the chunk's other rows (customers
    no longer live) deleted."""
    merged_away = (  # the index, or SQLite's statistics make it scan (see store)
        select(Customer.id)
        .where(Customer.merged_into_id.in_(chunk))
        .with_hint(Customer, "INDEXED BY ix_customers_merged_into", "sqlite")
    )
    removed = _delete_rows(session, CustomerState.customer_id.in_(merged_away))
    stored = dict(
        session.execute(
            select(CustomerState.customer_id, CustomerState.search_text).where(
                CustomerState.customer_id.in_(chunk)
            )
        ).all()
    )
    fresh = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    gone = set(stored) - {value["customer_id"] for value in fresh}
    if gone:
        _delete_rows(session, CustomerState.customer_id.in_(sorted(gone)))
    table = table_of(CustomerState)
    new = [value for value in fresh if value["customer_id"] not in stored]
    if new:
        session.execute(insert(table), new)
    for same_text in (True, False):
        columns = [c for c in COLUMNS if c not in _KEPT and (c != "search_text" or not same_text)]
        changed = [
            {"b_customer": value["customer_id"], **{f"b_{c}": value[c] for c in columns}}
            for value in fresh
            if value["customer_id"] in stored
            and (stored[value["customer_id"]] == value["search_text"]) == same_text
        ]
        if changed:
            session.execute(
                update(table)
                .where(table.c.customer_id == bindparam("b_customer"))
                .values({c: bindparam(f"b_{c}") for c in columns}),
                changed,
            )
    return removed


_KEPT = ("customer_id", "workspace_id", "rfm_segment")  # never changed by a row's update


def _write_segments(session: Session, changes: Sequence[tuple[int, str | None]]) -> None:
    table = table_of(CustomerState)
    session.execute(
        update(table)
        .where(table.c.customer_id == bindparam("b_customer"))
        .values(rfm_segment=bindparam("b_segment")),
        [{"b_customer": c, "b_segment": s} for c, s in changes],
    )


def _delete_rows(session: Session, where: ColumnElement[bool]) -> int:
    return int(getattr(session.execute(delete(CustomerState).where(where)), "rowcount", 0) or 0)


def _customers_with_events(session: Session, workspace_id: int, after: int, upto: int) -> list[int]:
    """Customers (through their identities) with an event of id in ``(after, upto]``."""
    query = (
        select(Identity.customer_id)
        .join(Event, Event.identity_id == Identity.id)
        .where(Event.workspace_id == workspace_id, Event.id > after, Event.id <= upto)
        .distinct()
    )
    return [int(c) for c in session.scalars(query)]


def _purchase_since(session: Session, workspace_id: int, after: int, upto: int) -> bool:
    found = session.scalar(
        select(Event.id)
        .where(
            Event.workspace_id == workspace_id,
            Event.id > after,
            Event.id <= upto,
            Event.name == PURCHASE_EVENT,
        )
        .limit(1)
    )
    return found is not None


def ensure_fresh(db: Database, workspace_id: int, *, max_events: int | None = None) -> bool:
    """Catch the rows up before a read; True when they are current, False while a background
    refresh is catching them up (the caller says "refreshing").

    Up to ``READ_REFRESH`` new events (a customer written a moment ago) are caught up on the
    spot, unless a refresh is running already (then it will). A bigger backlog (an import) is
    caught up on a thread of this process, as the kept readings are
    (``clm.analytics.kept``): ``clm serve`` alone runs no live loop (that is ``clm worker``),
    so leaving it to the loop left the list behind for good. Meanwhile the read serves the
    stored rows, never fewer customers than they held; rows never built at all wait up to
    ``READ_WAIT`` seconds for their first build, as there is nothing to serve."""
    limit = READ_REFRESH if max_events is None else max_events
    with db.session() as session:
        done = session.scalar(
            select(EngageCursor.last_event_id).where(
                EngageCursor.workspace_id == workspace_id, EngageCursor.consumer == EVENTS_CURSOR
            )
        )
        top = _top_event_id(session, workspace_id)
    if done is not None and done >= top:
        return True
    if top - (done or 0) <= limit:
        with one_at_a_time(db, "state", workspace_id, wait=False) as held:
            if held:
                _refresh(db, workspace_id, None, (), False)
                return True
        if done is not None:
            return False  # a refresh is running (a catch-up, the live loop's)
    thread = _refresher(db).start(workspace_id)
    if done is None:
        thread.join(READ_WAIT)
        return not thread.is_alive() and _refresher(db).caught_up(workspace_id, top)
    return False


class _Refresher:
    """One background ``refresh_state`` at a time per workspace, in this process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}

    def start(self, workspace_id: int) -> threading.Thread:
        """The running refresh of the workspace, or a new one."""
        with self._lock:
            thread = self._threads.get(workspace_id)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._run, args=(workspace_id,), name="clm-state-refresh", daemon=True
                )
                self._threads[workspace_id] = thread
                thread.start()
            return thread

    def _run(self, workspace_id: int) -> None:
        try:
            refresh_state(self.db, workspace_id)
        except Exception:  # the next read starts another; the error is kept in the log
            log.exception("background state refresh failed", extra={"workspace_id": workspace_id})

    def caught_up(self, workspace_id: int, top: int) -> bool:
        with self.db.session() as session:
            done = session.scalar(
                select(EngageCursor.last_event_id).where(
                    EngageCursor.workspace_id == workspace_id,
                    EngageCursor.consumer == EVENTS_CURSOR,
                )
            )
        return done is not None and done >= top

    def settle(self, timeout: float) -> None:
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)


def _refresher(db: Database) -> _Refresher:
    with _REFRESHERS:
        found = db.extensions.get(EXTENSION)
        if not isinstance(found, _Refresher):
            found = db.extensions[EXTENSION] = _Refresher(db)
        return found


def settle_refreshes(db: Database, timeout: float = 60.0) -> None:
    """Wait for the background refreshes ``ensure_fresh`` started (tests, a clean shutdown)."""
    with _REFRESHERS:
        found = db.extensions.get(EXTENSION)
    if isinstance(found, _Refresher):
        found.settle(timeout)


def current_counts(db: Database, workspace_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """How many customers stand in each stage (of the active model, every stage listed) and
    each health state (by label, every state listed) now: two ``GROUP BY``s over the rows, each
    a scan of one index. Rows computed under another model or scorecard (just applied, not yet
    refreshed) are not counted: the history is, as ``stage_counts`` and ``health_counts`` do."""
    ensure_fresh(db, workspace_id)
    info, model = get_stage_model(db, workspace_id)
    health_id = active_definition_id(db, workspace_id, "health")
    state = CustomerState
    with db.session() as session:
        marks = _cursor_values(
            session, workspace_id, (VERSION_CURSOR, STAGES_CURSOR, HEALTH_CURSOR)
        )
        fresh = marks.get(VERSION_CURSOR) == STATE_VERSION
        if not (fresh and marks.get(STAGES_CURSOR) == info.id):
            by_stage = None
        else:
            by_stage = session.execute(
                select(state.stage, func.count())
                .where(state.workspace_id == workspace_id, state.stage.is_not(None))
                .group_by(state.stage)
            ).all()
        if not (fresh and marks.get(HEALTH_CURSOR) == health_id):
            by_health = None
        else:
            by_health = session.execute(
                select(state.health_state, func.count())
                .where(state.workspace_id == workspace_id, state.health_state.is_not(None))
                .group_by(state.health_state)
            ).all()
    now = datetime.now(UTC)
    if by_stage is None:
        stages = stage_counts(db, workspace_id, now)
    else:
        stages = {stage.name: 0 for stage in model.stages}
        stages.update({str(name): int(n) for name, n in by_stage})
    if by_health is None:
        return stages, health_counts(db, workspace_id, now)
    health = dict.fromkeys(STATE_LABELS.values(), 0)
    health.update({STATE_LABELS.get(str(name), str(name)): int(n) for name, n in by_health})
    return stages, health


def invalidate_state(session: Session, workspace_id: int) -> None:
    """Make the next refresh a rebuild (after events were deleted: erasure, retention).

    The mark takes a value below any earlier one (0: never built, then -1, -2 ...), so a
    refresh running meanwhile sees it changed, however it started, and stops."""
    row = _cursor_row(session, workspace_id, VERSION_CURSOR, lock=True)
    row.last_event_id = min(row.last_event_id, 0) - 1


def forget_customers(session: Session, workspace_id: int, customer_ids: Sequence[int]) -> None:
    """Drop erased customers' rows now (they hold derived personal data), and rebuild later."""
    for chunk in _chunks(list(customer_ids)):
        session.execute(
            delete(CustomerState).where(
                CustomerState.workspace_id == workspace_id, CustomerState.customer_id.in_(chunk)
            )
        )
    invalidate_state(session, workspace_id)
