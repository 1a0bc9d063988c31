"""Stored goal outcomes, observed incrementally, against two recomputations from the log.

A hand-built log grows in rounds (goal events inside, outside and on the edges of windows, out
of order, tied, of other names and of another workspace; merges; erasures; new journeys; a
goal change), and after each round the outcomes the observer stored must equal a first-goal
computation in Python over the rows read back and, for reached or not, the report's former
query (an indexed probe per journey). The observer is also held to reading only what is new.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import case, func, insert, literal, select

from clm.accounts import Actor
from clm.engage.playbooks import outcomes
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.schedule import run_due
from clm.engage.playbooks.schemas import Goal
from clm.ingest import ingest
from clm.lifecycle import get_stage_model
from clm.lifecycle.history import replace_history
from clm.privacy import erase_customer
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    EngageJourney,
    EngagePlaybookGoal,
    Event,
    Identity,
    StageTransition,
)
from tests.conftest import make_tenant

DAY = 86_400
BASE = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp())
TEST = Actor("test:outcomes")
GOAL = "Order Completed"


class Log:
    """One workspace's customers, written through ingestion, and its playbook's journeys."""

    def __init__(self, db: Database, slug: str, people: int) -> None:
        self.db, self.ws, self.n = db, make_tenant(db, slug).id, 0
        ingest(db, self.ws, [
            {"type": "identify", "userId": f"u{i}", "messageId": f"id-{i}",
             "timestamp": "2024-05-01T00:00:00Z"} for i in range(people)
        ] + [
            {"type": "page", "anonymousId": f"a{i}", "messageId": f"anon-{i}",
             "timestamp": "2024-05-02T00:00:00Z"} for i in range(people // 2)
        ])  # fmt: skip

    def customer(self, kind: str, value: str) -> int:
        with self.db.session() as session:
            found = session.scalar(
                select(Identity.customer_id).where(
                    Identity.workspace_id == self.ws, Identity.kind == kind, Identity.value == value
                )
            )
        assert found is not None
        return int(found)

    def track(self, who: str, name: str, ts: int) -> None:
        self.n += 1
        key = "userId" if who.startswith("u") else "anonymousId"
        at = datetime.fromtimestamp(ts, UTC).isoformat()
        ingest(self.db, self.ws, [{"type": "track", "event": name, key: who,
                                   "messageId": f"t{self.n}", "timestamp": at}])  # fmt: skip

    def merge(self, anonymous: str, user: str) -> None:
        self.n += 1
        ingest(self.db, self.ws, [{"type": "identify", "anonymousId": anonymous, "userId": user,
                                   "messageId": f"m{self.n}",
                                   "timestamp": "2024-05-03T00:00:00Z"}])  # fmt: skip

    def enrol(
        self, playbook_id: int, name: str, customer: int, start: int, state: str = "completed"
    ) -> None:
        """A journey as the tick writes one; ``state`` "control" is a held-out one."""
        arm = "control" if state == "control" else "treatment"
        now = datetime.now(UTC)
        with self.db.transaction() as session:
            session.execute(insert(EngageJourney).values(
                workspace_id=self.ws, playbook_id=playbook_id, playbook_name=name,
                customer_id=customer, arm=arm, variant=None, step=0, state=state, wake_at=None,
                wait_event=None, enrolled_at=now, enrolled_ts=start, updated_at=now,
            ))  # fmt: skip


def _book(name: str, goal: dict[str, Any]) -> pb.PlaybookDefinition:
    return pb.parse_playbook({
        "name": name, "trigger": {"type": "event", "event": "Never Sent"}, "goal": goal,
        "steps": [{"id": "call", "type": "task", "title": "Call"}],
    })  # fmt: skip


def stored(db: Database, ws: int, name: str) -> dict[int, tuple[int, int] | None]:
    """(goal_ts, goal_source_id) of each journey observed under the current goal version."""
    with db.session() as session:
        version = session.scalar(
            select(EngagePlaybookGoal.version).where(
                EngagePlaybookGoal.workspace_id == ws, EngagePlaybookGoal.playbook_name == name
            )
        )
        rows = session.execute(
            select(EngageJourney.id, EngageJourney.goal_version, EngageJourney.goal_ts,
                   EngageJourney.goal_source_id)
            .where(EngageJourney.workspace_id == ws, EngageJourney.playbook_name == name)
        ).all()  # fmt: skip
    assert all(r.goal_version == version for r in rows), "a journey left unobserved"
    return {r.id: None if r.goal_ts is None else (r.goal_ts, r.goal_source_id) for r in rows}


def first_goals(
    db: Database, ws: int, name: str, goal: Goal, model: int | None
) -> dict[int, tuple[int, int] | None]:
    """The definition, in Python: each journey's first (ts, id) goal row of its person (the
    customer it was merged into, if it was) inside [enrolled, enrolled + within_days]."""
    with db.session() as session:
        journeys = session.execute(
            select(EngageJourney.id, EngageJourney.customer_id, EngageJourney.enrolled_ts).where(
                EngageJourney.workspace_id == ws, EngageJourney.playbook_name == name
            )
        ).all()
        merged = dict(
            session.execute(
                select(Customer.id, Customer.merged_into_id).where(Customer.workspace_id == ws)
            ).all()
        )
        if goal.stage:
            rows = [
                (t.customer_id, t.ts, t.id)
                for t in session.execute(
                    select(
                        StageTransition.customer_id, StageTransition.ts, StageTransition.id
                    ).where(
                        StageTransition.definition_id == model,
                        StageTransition.to_stage == goal.stage,
                    )
                )
            ]
        else:
            owner = dict(
                session.execute(
                    select(Identity.id, Identity.customer_id).where(Identity.workspace_id == ws)
                ).all()
            )
            rows = [
                (owner[e.identity_id], e.ts, e.id)
                for e in session.execute(
                    select(Event.identity_id, Event.ts, Event.id).where(
                        Event.workspace_id == ws, Event.name == goal.event
                    )
                )
            ]
    out: dict[int, tuple[int, int] | None] = {}
    for journey, customer, start in journeys:
        person = merged.get(customer) or customer
        hits = sorted(
            (ts, i)
            for c, ts, i in rows
            if c == person and start <= ts <= start + goal.within_days * DAY
        )
        out[journey] = hits[0] if hits else None
    return out


def reached_by_probe(
    db: Database, ws: int, name: str, goal: Goal, model: int | None
) -> dict[int, bool]:
    """The report's former query (before outcomes were stored): an EXISTS probe per journey,
    here with the journey's customer resolved to the one it was merged into."""
    person = func.coalesce(Customer.merged_into_id, EngageJourney.customer_id)
    start = EngageJourney.enrolled_ts
    end = EngageJourney.enrolled_ts + goal.within_days * DAY
    if goal.stage:
        found = select(literal(1)).where(
            StageTransition.definition_id == model,
            StageTransition.customer_id == person,
            StageTransition.to_stage == goal.stage,
            StageTransition.ts.between(start, end),
        )
    else:
        found = (
            select(literal(1))
            .select_from(Identity)
            .join(Event, Event.identity_id == Identity.id)
            .where(
                Identity.customer_id == person,
                Event.name == goal.event,
                Event.ts.between(start, end),
            )
        )
    with db.session() as session:
        rows = session.execute(
            select(EngageJourney.id, case((found.exists(), 1), else_=0))
            .outerjoin(Customer, Customer.id == EngageJourney.customer_id)
            .where(EngageJourney.workspace_id == ws, EngageJourney.playbook_name == name)
        ).all()
    return {int(j): bool(hit) for j, hit in rows}


def check(log: Log, name: str, goal: Goal, model: int | None = None) -> dict[int, Any]:
    got = stored(log.db, log.ws, name)
    want = first_goals(log.db, log.ws, name, goal, model)
    assert got == want
    probe = reached_by_probe(log.db, log.ws, name, goal, model)
    assert {j: v is not None for j, v in got.items()} == probe
    return got


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_outcomes_equal_a_full_recompute_round_after_round(
    db: Database, seed: int
) -> None:
    rng = random.Random(seed)
    log = Log(db, "shop", 16)
    other = Log(db, "other", 4)
    book = pb.apply_playbook(db, log.ws, _book("buy", {"event": GOAL, "within_days": 10}))
    goal = Goal(event=GOAL, within_days=10)
    users = [f"u{i}" for i in range(16)]
    anonymous = [f"a{i}" for i in range(8)]
    journeys: list[tuple[str, int]] = []  # (identifier, enrolled_ts)

    def enrol(count: int, chosen: str | None = None) -> None:
        for _ in range(count):
            who = chosen or rng.choice(users + anonymous)
            kind = "user_id" if who.startswith("u") else "anonymous_id"
            start = BASE + rng.randrange(0, 20) * DAY + rng.randrange(DAY)
            state = rng.choice(["control", "active", "waiting", "completed", "exited"])
            log.enrol(book.id, "buy", log.customer(kind, who), start, state)
            journeys.append((who, start))

    enrol(10)
    enrol(2, users[0])  # erased in round 4
    first = outcomes.observe_all(db, log.ws)
    assert first == 12  # every journey probed once
    check(log, "buy", goal)
    for round_ in range(6):
        for _ in range(rng.randrange(3, 9)):  # goal events relative to a journey's window
            who, start = rng.choice(journeys)
            offset = rng.choice([0, 10 * DAY, 10 * DAY + 1, -1, 3 * DAY, 25 * DAY, -5 * DAY])
            log.track(who, rng.choice([GOAL, GOAL, "Order Cancelled"]), start + offset)
        who, start = rng.choice(journeys)
        log.track(who, GOAL, start + DAY)  # the same moment twice: the lower id is the first
        log.track(who, GOAL, start + DAY)
        log.track(who, GOAL, start + 2 * DAY)  # later, written after an earlier one below
        log.track(who, GOAL, start + DAY // 2)
        other.track("u1", GOAL, start + DAY)  # another workspace's
        if round_ in (1, 3):
            log.merge(anonymous[round_], users[round_ + 8])  # one of two absorbs the other
        if round_ == 2:
            enrol(5)
        if round_ == 4:
            erased = log.customer("user_id", users[0])
            erase_customer(db, log.ws, erased, who=TEST)
            journeys[:] = [j for j in journeys if j[0] != users[0]]
            users.remove(users[0])
        outcomes.observe_all(db, log.ws)
        assert len(check(log, "buy", goal)) == len(journeys)
    got = check(log, "buy", goal)
    assert any(v is not None for v in got.values()) and any(v is None for v in got.values())

    # Nothing new: nothing probed. One new goal event: only its person's journeys.
    assert outcomes.observe_all(db, log.ws) == 0
    who, start = journeys[0]
    kind = "user_id" if who.startswith("u") else "anonymous_id"
    person = log.customer(kind, who)
    with db.session() as session:
        mine = session.scalar(
            select(func.count()).where(
                EngageJourney.workspace_id == log.ws,
                EngageJourney.customer_id.in_(
                    select(Customer.id).where(
                        (Customer.id == person) | (Customer.merged_into_id == person)
                    )
                ),
            )
        )
    log.track(who, GOAL, start + 4 * DAY)
    assert outcomes.observe_all(db, log.ws) == mine
    check(log, "buy", goal)

    # A changed goal is a new version: every journey observed again under it.
    pb.apply_playbook(db, log.ws, _book("buy", {"event": GOAL, "within_days": 3}))
    assert outcomes.observe_all(db, log.ws) == len(journeys)
    check(log, "buy", Goal(event=GOAL, within_days=3))


def test_a_merge_shares_the_goal_between_the_two_customers_journeys(db: Database) -> None:
    """Journeys of two customers that turn out to be one person: after the merge, each
    journey's outcome reads the person's events, whichever id it was enrolled under."""
    log = Log(db, "shop", 2)
    book = pb.apply_playbook(db, log.ws, _book("buy", {"event": GOAL, "within_days": 10}))
    goal = Goal(event=GOAL, within_days=10)
    log.enrol(book.id, "buy", log.customer("user_id", "u0"), BASE)
    log.enrol(book.id, "buy", log.customer("anonymous_id", "a0"), BASE, "control")
    log.track("a0", GOAL, BASE + DAY)
    outcomes.observe_all(db, log.ws)
    before = check(log, "buy", goal)
    assert sorted(v is not None for v in before.values()) == [False, True]
    log.merge("a0", "u0")
    assert outcomes.observe_all(db, log.ws) == 2  # the person's two journeys, nothing else
    after = check(log, "buy", goal)
    hit = next(v for v in before.values() if v is not None)
    assert list(after.values()) == [hit, hit]
    log.track("u0", GOAL, BASE + DAY // 2)  # earlier, under the other identity
    outcomes.observe_all(db, log.ws)
    latest = check(log, "buy", goal)
    assert len(set(latest.values())) == 1 and next(iter(latest.values())) != hit
    report = pb.playbook_report(db, log.ws, "buy")
    assert (report.treatment.reached_goal, report.control.reached_goal) == (1, 1)


def test_stage_goal_follows_rewritten_history(db: Database) -> None:
    """A stage entry in the window counts; a history rewritten without it takes it back; a
    new stage model is a new goal version."""
    log = Log(db, "shop", 4)
    book = pb.apply_playbook(db, log.ws, _book("climb", {"stage": "loyalty", "within_days": 5}))
    goal = Goal(stage="loyalty", within_days=5)
    model = get_stage_model(db, log.ws)[0].id
    ids = [log.customer("user_id", f"u{i}") for i in range(4)]
    for customer in ids:
        log.enrol(book.id, "climb", customer, BASE)

    def entered(customer: int, after: int, stage: str = "loyalty") -> dict[str, Any]:
        return {
            "workspace_id": log.ws, "definition_id": model, "customer_id": customer,
            "ts": BASE + after, "occurred_at": datetime.fromtimestamp(BASE + after, UTC),
            "from_stage": "conversion", "to_stage": stage, "kind": "forward", "rule": "test",
            "cause_message_id": None, "announced": True,
        }  # fmt: skip

    with db.transaction() as session:
        # u0 inside, u1 after, u2 on the edge (and another stage earlier), u3 twice: the first
        history = [entered(ids[0], 2 * DAY), entered(ids[1], 6 * DAY), entered(ids[2], 5 * DAY),
                   entered(ids[2], DAY, "retention"), entered(ids[3], 4 * DAY),
                   entered(ids[3], 3 * DAY)]  # fmt: skip
        replace_history(session, model, history, ids)
    outcomes.observe_all(db, log.ws)
    got = check(log, "climb", goal, model)
    assert [got[j] is not None for j in sorted(got)] == [True, False, True, True]
    report = pb.playbook_report(db, log.ws, "climb")
    assert (report.treatment.enrolled, report.treatment.reached_goal) == (4, 3)

    with db.transaction() as session:  # u0's history recomputed: loyalty now after the window
        replace_history(session, model, [entered(ids[0], 9 * DAY)], [ids[0]])
    assert outcomes.observe_all(db, log.ws) == 1
    check(log, "climb", goal, model)
    report = pb.playbook_report(db, log.ws, "climb")
    assert report.treatment.reached_goal == 2


def test_report_observes_first_and_tick_keeps_it_current(db: Database) -> None:
    """Journeys written before any observation are observed by the first report; after that
    the tick keeps them, and a report finds nothing to do."""
    log = Log(db, "shop", 6)
    book = pb.apply_playbook(db, log.ws, _book("buy", {"event": GOAL, "within_days": 10}))
    for i in range(6):
        state = "control" if i < 2 else "completed"  # the goal comes after the journey ended
        log.enrol(book.id, "buy", log.customer("user_id", f"u{i}"), BASE, state)
    for i in (0, 2, 3):  # a control and two treated reach it
        log.track(f"u{i}", GOAL, BASE + i * DAY)
    log.track("u4", GOAL, BASE + 11 * DAY)  # too late
    report = pb.playbook_report(db, log.ws, "buy")
    assert (report.control.enrolled, report.control.reached_goal) == (2, 1)
    assert (report.treatment.enrolled, report.treatment.reached_goal) == (4, 2)
    log.track("u5", GOAL, BASE + 9 * DAY)
    ticked = run_due(db, log.ws, datetime.fromtimestamp(BASE, UTC) + timedelta(days=1))
    assert ticked.goals_observed == 1 and not ticked.errors
    with db.session() as session:
        state = session.scalars(select(EngagePlaybookGoal)).one()
    assert outcomes.observe(
        db, log.ws, "buy", outcomes.WatchedGoal(Goal(event=GOAL, within_days=10), None)
    ) == outcomes.Observed(state.version, 0)
    report = pb.playbook_report(db, log.ws, "buy")
    assert report.treatment.reached_goal == 3
