"""Goal outcomes: whether, when and by what each journey reached its playbook's goal, stored
on the journey row and kept current as the log grows, so a playbook's report reads them.

A journey reached the goal when its person has a goal event, or entered the goal stage under
the workspace's stage model, inside ``[enrolled_ts, enrolled_ts + within_days]``; the outcome
is the first such one (earliest ``ts``, then lowest id). The person is the journey's customer,
or the customer it was merged into: a merged-away customer's journeys see the events and
history of the one it became. The goal is the playbook's latest version's (as the report has
always read it), whatever version a journey began on; ``goal_key`` names it (with the stage
model for a stage goal), and a changed key numbers a new ``version`` under which every
journey is observed again.

Observing is incremental. A journey not observed under the current version (``goal_version``
NULL: a new one, every one after a goal change, those marked below) is probed against the log
(``first_hit``: the full computation, restricted to those journeys). After that only what the
log adds can change an outcome, and it is read after three cursors: goal events (their
person's journeys), stage transitions (a customer's history is replaced whole, so a change to
it writes new rows; only a history emptied, by a purge of all their events, goes unseen) and
merges (identity links: the person's events and history now include the other customer's).
Those journeys are marked unobserved and probed again, so the result equals a full recompute.
The journey's state plays no part: a completed, exited or failed journey, and a held-out
(control) one that is never messaged, is observed the same way, for the whole window. An
erasure deletes the person's journeys with their outcomes; a retention purge keeps the
outcomes, as it keeps the stage history.

The engagement tick observes every playbook; a report observes its playbook first, so the
first report after a goal change (or on journeys written before this existed) does the full
computation once (about 3 s CPU at 100,000 journeys), and later ones only what is new.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clm.engage._bulk import update_by_id
from clm.engage.playbooks.schemas import Goal, PlaybookDefinition
from clm.lifecycle import get_stage_model
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    EngageJourney,
    EngagePlaybook,
    EngagePlaybookGoal,
    Event,
    Identity,
    IdentityLink,
    StageTransition,
    table_of,
)
from clm.store.settled import settled_tops

log = logging.getLogger("clm.engage.outcomes")
BATCH = 2_000  # journeys probed and written a transaction: the writer lock is held briefly
_CHUNK = 500
DAY = 86_400


@dataclass(frozen=True)
class WatchedGoal:
    """A goal as observed: the definition, the stage model it reads, the key naming both."""

    goal: Goal
    stage_model: int | None

    @property
    def key(self) -> str:
        return orjson.dumps(
            {
                "event": None if self.goal.stage else self.goal.event,
                "stage": self.goal.stage,
                "stage_model": self.stage_model,
                "within_days": self.goal.within_days,
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()


class Observed(NamedTuple):
    version: int  # the goal version the playbook's outcomes now answer
    journeys: int  # journeys probed to get there


class _Tops(NamedTuple):
    events: int
    transitions: int
    links: int


def watched_goal(db: Database, workspace_id: int, goal: Goal) -> WatchedGoal:
    """``goal`` with the stage model a stage goal is read under (the workspace's active one)."""
    model = get_stage_model(db, workspace_id)[0].id if goal.stage else None
    return WatchedGoal(goal, model)


def observe(db: Database, workspace_id: int, name: str, watched: WatchedGoal) -> Observed:
    """Bring the goal outcomes of playbook ``name``'s journeys up to date with the log."""
    with db.session() as session:
        state = _state(session, workspace_id, name)
        if (
            state is not None
            and state.goal_key == watched.key
            and _cursors(state) == _tops(session)
            and not _unobserved(session, workspace_id, name, 1)
        ):
            return Observed(state.version, 0)
    settled = settled_tops(db, ("events", "stage_transitions", "identity_links"))
    with db.transaction() as session:
        state = _locked_state(session, db.dialect, workspace_id, name, watched.key)
        # Only as far as every smaller id is committed (PostgreSQL commits ids out of order):
        # a goal event, transition or merge committed later under a cursor is never seen.
        done = _cursors(state)
        tops = done if settled is None else _Tops(*map(max, zip(settled, done, strict=True)))
        if state.goal_key != watched.key:  # a new version: every journey observed again
            state.goal_key, state.version = watched.key, state.version + 1
            _forget(session, workspace_id, name, None)
        else:
            touched = _touched(session, workspace_id, watched, state, tops)
            _forget(session, workspace_id, name, _people(session, touched))
        state.event_cursor, state.transition_cursor, state.link_cursor = tops
        version = state.version
    probed = 0
    while True:
        with db.transaction() as session:
            state = _locked_state(session, db.dialect, workspace_id, name, watched.key)
            if state.version != version:  # another observer saw a newer goal: it carries on
                break
            hits = _unobserved(session, workspace_id, name, BATCH, first_hit(watched))
            if not hits:
                break
            _store(session, version, watched, hits)
            probed += len(hits)
    return Observed(version, probed)


def observe_all(db: Database, workspace_id: int) -> int:
    """``observe`` every playbook of the workspace that has a goal; returns journeys probed."""
    probed = 0
    for name, goal in latest_goals(db, workspace_id).items():
        probed += observe(db, workspace_id, name, watched_goal(db, workspace_id, goal)).journeys
    return probed


def latest_goals(db: Database, workspace_id: int) -> dict[str, Goal]:
    """Each playbook's goal, from its latest version (playbooks without one left out)."""
    with db.session() as session:
        rows = session.execute(
            select(EngagePlaybook.id, EngagePlaybook.name, EngagePlaybook.definition)
            .where(EngagePlaybook.workspace_id == workspace_id)
            .order_by(EngagePlaybook.name, EngagePlaybook.version.desc())
        ).all()
    goals: dict[str, Goal] = {}
    seen: set[str] = set()
    for row in rows:
        if row.name in seen:
            continue
        seen.add(row.name)
        try:
            goal = PlaybookDefinition.model_validate(row.definition).goal
        except ValueError:  # stored before a rule it now breaks (see journeys.active_playbooks)
            log.error(
                "stored playbook no longer valid",
                extra={"workspace_id": workspace_id, "playbook_id": row.id},
            )
            continue
        if goal is not None:
            goals[row.name] = goal
    return goals


def first_hit(watched: WatchedGoal) -> ColumnElement[Any]:
    """The id of a journey's first goal event (or goal stage entry) in its window, or NULL.

    A correlated sub-query of ``EngageJourney`` and its ``Customer`` (outer-joined): one indexed
    probe, ``ix_events_identity_name_ts`` through the person's identities, or
    ``ix_stage_transitions_customer``.
    """
    goal = watched.goal
    person = func.coalesce(Customer.merged_into_id, EngageJourney.customer_id)
    start = EngageJourney.enrolled_ts
    end = EngageJourney.enrolled_ts + goal.within_days * DAY
    if goal.stage:
        return (
            select(StageTransition.id)
            .where(
                StageTransition.definition_id == watched.stage_model,
                StageTransition.customer_id == person,
                StageTransition.to_stage == goal.stage,
                StageTransition.ts.between(start, end),
            )
            .order_by(StageTransition.ts, StageTransition.id)
            .limit(1)
            .scalar_subquery()
        )
    if not goal.event:
        return func.nullif(0, 0)  # a goal naming neither: nobody reaches it
    return (
        select(Event.id)
        .select_from(Identity)
        .join(Event, Event.identity_id == Identity.id)
        # No workspace test on the events: the person is the workspace's, and so are its
        # identities and their events; without it the probe reads the index alone.
        .where(
            Identity.customer_id == person,
            Event.name == goal.event,
            Event.ts.between(start, end),
        )
        .order_by(Event.ts, Event.id)
        .limit(1)
        .scalar_subquery()
    )


def _state(session: Session, workspace_id: int, name: str) -> EngagePlaybookGoal | None:
    return session.scalars(
        select(EngagePlaybookGoal).where(
            EngagePlaybookGoal.workspace_id == workspace_id,
            EngagePlaybookGoal.playbook_name == name,
        )
    ).first()


def _locked_state(
    session: Session, dialect: str, workspace_id: int, name: str, key: str
) -> EngagePlaybookGoal:
    """The playbook's observation row, made at version 0 (nothing observed) if missing, and
    locked: observers of one playbook take turns (on SQLite the writer lock does that)."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(EngagePlaybookGoal)
        .values(
            workspace_id=workspace_id,
            playbook_name=name,
            goal_key="",  # no goal's key: the first observation starts version 1
            version=0,
            event_cursor=0,
            transition_cursor=0,
            link_cursor=0,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "playbook_name"])
    )
    found = session.scalars(
        select(EngagePlaybookGoal)
        .where(
            EngagePlaybookGoal.workspace_id == workspace_id,
            EngagePlaybookGoal.playbook_name == name,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return found


def _cursors(state: EngagePlaybookGoal) -> _Tops:
    return _Tops(state.event_cursor, state.transition_cursor, state.link_cursor)


def _tops(session: Session) -> _Tops:
    """The newest row of each log read: all workspaces' (the primary key's last entry);
    nothing new past the cursors when they are all reached."""
    return _Tops(
        int(session.scalar(select(func.max(Event.id))) or 0),
        int(session.scalar(select(func.max(StageTransition.id))) or 0),
        int(session.scalar(select(func.max(IdentityLink.id))) or 0),
    )


def _touched(
    session: Session,
    workspace_id: int,
    watched: WatchedGoal,
    state: EngagePlaybookGoal,
    tops: _Tops,
) -> set[int]:
    """Customers whose outcomes what the log added since the cursors may change."""
    goal, found = watched.goal, set[int]()
    if goal.stage:
        found.update(
            session.scalars(
                select(StageTransition.customer_id)
                .where(
                    StageTransition.id > state.transition_cursor,
                    StageTransition.id <= tops.transitions,
                    StageTransition.definition_id == watched.stage_model,
                )
                .distinct()
            )
        )
    elif goal.event:
        found.update(
            session.scalars(
                select(Identity.customer_id)
                .join(Event, Event.identity_id == Identity.id)
                .where(
                    Event.id > state.event_cursor,
                    Event.id <= tops.events,
                    Event.workspace_id == workspace_id,
                    Event.name == goal.event,
                )
                .distinct()
            )
        )
    merges = session.execute(
        select(IdentityLink.customer_id, IdentityLink.other_customer_id).where(
            IdentityLink.id > state.link_cursor,
            IdentityLink.id <= tops.links,
            IdentityLink.workspace_id == workspace_id,
            IdentityLink.outcome == "merged",
        )
    )
    for winner, loser in merges:
        found.update(c for c in (winner, loser) if c is not None)
    return {int(c) for c in found}


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _people(session: Session, customers: Iterable[int]) -> list[int]:
    """Every customer id of the people ``customers`` are part of (merged ones included)."""
    ids = sorted(set(customers))
    roots: set[int] = set()
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Customer.id, Customer.merged_into_id).where(Customer.id.in_(chunk))
        )
        roots.update(int(merged or cid) for cid, merged in rows)
    people = set(roots) | set(ids)
    ordered = sorted(roots)
    for chunk in _chunks(ordered):
        people.update(
            session.scalars(
                select(Customer.id)
                .where(Customer.merged_into_id.in_(chunk))
                .with_hint(Customer, "INDEXED BY ix_customers_merged_into", "sqlite")
            )
        )
    return sorted(people)


def _forget(
    session: Session, workspace_id: int, name: str, customers: Sequence[int] | None
) -> None:
    """Mark these customers' journeys of the playbook (all with None) unobserved: probed
    again next. Unobserved is NULL, never an older version, so that one range of
    ``ix_engage_journeys_goal`` finds them (no index serves ``goal_version <> :current``)."""
    journeys = update(EngageJourney).where(
        EngageJourney.workspace_id == workspace_id, EngageJourney.playbook_name == name
    )
    if customers is None:
        session.execute(journeys.values(goal_version=None))
        return
    for chunk in _chunks(customers):
        session.execute(
            journeys.where(EngageJourney.customer_id.in_(chunk)).values(goal_version=None)
        )


def _unobserved(
    session: Session,
    workspace_id: int,
    name: str,
    limit: int,
    hit: ColumnElement[Any] | None = None,
) -> list[Any]:
    """Up to ``limit`` journeys not observed yet: their ids, and ``hit`` of each if given."""
    query: Select[Any] = select(EngageJourney.id)
    if hit is not None:
        query = query.add_columns(hit).outerjoin(Customer, Customer.id == EngageJourney.customer_id)
    query = query.where(
        EngageJourney.workspace_id == workspace_id,
        EngageJourney.playbook_name == name,
        EngageJourney.goal_version.is_(None),
    )
    # SQLite's statistics date from whenever it last analysed: taken when every journey was
    # unobserved, they make the index look useless, and it scanned 100,000 rows to find none.
    query = query.with_hint(EngageJourney, "INDEXED BY ix_engage_journeys_goal", "sqlite")
    return list(session.execute(query.limit(limit)))


def _store(session: Session, version: int, watched: WatchedGoal, hits: Sequence[Any]) -> None:
    sources = sorted({int(h[1]) for h in hits if h[1] is not None})
    source = StageTransition if watched.goal.stage else Event
    when: dict[int, int] = {}
    for chunk in _chunks(sources):
        found = session.execute(select(source.id, source.ts).where(source.id.in_(chunk)))
        when.update((int(i), int(ts)) for i, ts in found)
    rows: list[dict[str, Any]] = []
    for journey, first in hits:
        # A source gone between the two reads (a stage history replaced on PostgreSQL, where
        # each statement reads afresh) counts as not reached: its replacement rows are newer
        # than the cursor, so the journey is observed again.
        ts = when.get(int(first)) if first is not None else None
        rows.append(
            {
                "id": int(journey),
                "goal_version": version,
                "goal_ts": ts,
                "goal_source_id": int(first) if ts is not None else None,
            }
        )
    update_by_id(session, table_of(EngageJourney), rows)
