"""Engagement's id cursors on PostgreSQL: an event committed after a larger id (its writer drew
the id first) is still read, by playbook enrolment and wake-ups, goal outcomes, survey answers
and points earning (``clm.store.settled``). SQLite has one writer: ids commit in order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clm.engage.playbooks import service as pb
from clm.engage.playbooks.journey_steps import tick
from clm.store.engine import Database
from clm.store.models import EngageJourney, EngageMessage
from tests.engage.test_playbooks import NOW, orders, population, stage_changes
from tests.late_writer import late_event, settle_quickly


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
