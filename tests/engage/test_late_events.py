"""Engagement's id cursors on PostgreSQL: a row committed after a larger id (its writer drew the
id first) is still read by playbook enrolment and wake-ups, goal outcomes, survey answers,
points earning and health-triggered enrolment (``clm.store.settled``). SQLite has one writer:
ids commit in order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clm.engage.playbooks import outcomes
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.journey_steps import tick
from clm.engage.playbooks.schemas import Goal
from clm.engage.referrals.earning import (
    EarningRule,
    PointsProgram,
    earn_from_events,
    set_points_program,
)
from clm.engage.referrals.ledger import balance_in
from clm.engage.surveys.stored_answers import catch_up
from clm.lifecycle.health import STATE_LABELS
from clm.lifecycle.health_current import score_health
from clm.store.engine import Database
from clm.store.models import EngageJourney, EngageMessage, HealthSnapshot
from tests.engage.test_playbook_outcomes import BASE, DAY, GOAL, Log, _book, check
from tests.engage.test_playbooks import NOW, orders, population, stage_changes
from tests.engage.test_stored_answers import MARCH, answered
from tests.engage.test_stored_answers import log as log_answers
from tests.engage.test_stored_answers import stored as stored_answers
from tests.engage.test_stored_answers import workspace as answers_workspace
from tests.late_writer import late_event, late_row, settle_quickly


@pytest.fixture(autouse=True)
def _postgres_only(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    settle_quickly(monkeypatch)


def _welcomed(db: Database, ws: int, customer_id: int) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(
                select(EngageMessage.status).where(
                    EngageMessage.workspace_id == ws, EngageMessage.customer_id == customer_id
                )
            )
        )


def test_a_late_stage_change_still_enrols_and_welcomes(db: Database) -> None:
    ws, ids = population(db, 2)
    pb.apply_playbook(db, ws, pb.shipped_playbook("welcome").model_copy(update={"holdout": 0.0}))
    conversion = {"from_stage": "acquisition", "to_stage": "conversion"}
    late = {"type": "track", "name": "lifecycle_stage_changed", "properties": conversion}
    with late_event(db, ws, "id-0", message_id="lc-u0-late", **late) as commit_late:
        stage_changes(db, ws, ["u1"], "conversion", NOW)  # a larger id, committed first
        tick(db, ws, NOW)  # u0's event is not committed yet
        commit_late()
    tick(db, ws, NOW)
    for user in ("u0", "u1"):
        assert [j.playbook for j in pb.journey_history(db, ws, ids[user])] == ["welcome"]
        assert len(_welcomed(db, ws, ids[user])) == 1  # the welcome email was decided


def test_a_late_order_still_wakes_the_waiting_journey(db: Database) -> None:
    ws, ids = population(db, 2)
    pb.apply_playbook(db, ws, pb.shipped_playbook("welcome").model_copy(update={"holdout": 0.0}))
    stage_changes(db, ws, ["u0", "u1"], "conversion", NOW)
    tick(db, ws, NOW)  # both welcomed, now waiting for an order
    day = NOW + timedelta(days=1)
    order = {"type": "track", "name": "Order Completed", "properties": {"revenue": 20}}
    late = {**order, "ts": int(day.timestamp()), "timestamp": day}
    with late_event(db, ws, "id-0", message_id="o-u0-late", **late) as commit_late:
        orders(db, ws, ["u1"], day)  # a larger id, committed first
        tick(db, ws, day)
        commit_late()
    tick(db, ws, day)
    with db.session() as session:
        query = select(EngageJourney.customer_id, EngageJourney.state)
        states = {c: s for c, s in session.execute(query)}
    assert states == {ids["u0"]: "exited", ids["u1"]: "exited"}  # the order ended both waits


def test_a_late_goal_event_still_reaches_the_goal(db: Database) -> None:
    """The goal cursors run over every workspace's rows: another shop's event commits under a
    larger id while this shop's purchase is in flight."""
    log, other = Log(db, "shop", 2), Log(db, "other", 1)
    book = pb.apply_playbook(db, log.ws, _book("buy", {"event": GOAL, "within_days": 10}))
    journey_of = log.customer("user_id", "u0")
    log.enrol(book.id, "buy", journey_of, BASE)
    outcomes.observe_all(db, log.ws)
    goal = {"type": "track", "name": GOAL, "ts": BASE + DAY}
    with late_event(db, log.ws, "id-0", message_id="goal-late", **goal) as commit_late:
        other.track("u0", GOAL, BASE + DAY)  # a larger id, committed first
        outcomes.observe_all(db, log.ws)
        late_id = commit_late()
    outcomes.observe_all(db, log.ws)
    assert list(check(log, "buy", Goal(event=GOAL, within_days=10)).values()) == [
        (BASE + DAY, late_id)
    ]


def test_a_late_survey_answer_is_still_stored(db: Database) -> None:
    ws = answers_workspace(db)
    log_answers(db, ws, [answered("u0", "a0", MARCH, survey_id="nps", score=7)])
    log_answers(db, ws, [answered("u1", "b0", MARCH, survey_id="nps", score=3)])
    catch_up(db, ws)
    late = {"properties": {"survey_id": "nps", "score": 10, "response_id": "late"}}
    with late_event(db, ws, "a0", message_id="a-late", **late) as commit_late:
        log_answers(db, ws, [answered("u1", "b1", MARCH, survey_id="nps", score=9)])
        catch_up(db, ws)
        commit_late()
    catch_up(db, ws)
    assert sorted(score for _, _, _, score, *_ in stored_answers(db, ws)) == [3, 7, 9, 10]


def test_a_late_purchase_still_earns_its_points(db: Database) -> None:
    ws, ids = population(db, 2)
    set_points_program(db, ws, PointsProgram(rules=[EarningRule(points_per_unit=1)]))
    late = {"type": "track", "name": "Order Completed", "properties": {"revenue": 20}}
    with late_event(db, ws, "id-0", message_id="o-u0-late", **late) as commit_late:
        orders(db, ws, ["u1"], NOW)  # a larger id, committed first (revenue 20)
        earn_from_events(db, ws, NOW)
        commit_late()
    earn_from_events(db, ws, NOW)
    with db.session() as session:
        assert [balance_in(session, ws, ids[u]) for u in ("u0", "u1")] == [20, 20]


def test_a_late_health_snapshot_still_enrols_its_customer(db: Database) -> None:
    ws, ids = population(db, 2)
    score_health(db, ws, now=NOW)
    with db.session() as session:
        first = {
            s.customer_id: s for s in session.scalars(select(HealthSnapshot))
        }  # one snapshot each
    target = next(s for s in STATE_LABELS if s not in {first[c].state for c in ids.values()})
    book = {"name": "check-in", "trigger": {"type": "health_changed", "to": target},
            "holdout": 0.0, "steps": [{"id": "call", "type": "task", "title": "Call"}]}  # fmt: skip
    pb.apply_playbook(db, ws, pb.parse_playbook(book))
    tick(db, ws, NOW)  # nobody is in the target state yet
    later = {"state": target, "ts": first[ids["u0"]].ts + 60}
    u0_first = HealthSnapshot.id == first[ids["u0"]].id
    with late_row(db, HealthSnapshot, u0_first, **later) as commit_late:
        with db.transaction() as session:  # a larger id, committed first
            u1 = first[ids["u1"]]
            session.add(HealthSnapshot(**{
                **{c.name: getattr(u1, c.name) for c in HealthSnapshot.__table__.columns},
                "id": None, "state": target, "ts": u1.ts + 60,
            }))  # fmt: skip
        tick(db, ws, NOW)
        commit_late()
    tick(db, ws, NOW)
    for user in ("u0", "u1"):
        assert [j.playbook for j in pb.journey_history(db, ws, ids[user])] == ["check-in"]
