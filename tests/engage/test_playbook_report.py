"""A playbook's report (holdout uplift and its CI) against a count worked out in the test from
the events and transitions it wrote: goal events or stage entries inside, on the edge of and
outside each journey's window, another event name, and another workspace's events."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.journey_steps import tick
from clm.engage.schemas import Policy
from clm.ingest import ingest
from clm.lifecycle import get_stage_model
from clm.store.engine import Database
from clm.store.models import Customer, EngageJourney, StageTransition
from tests.conftest import make_tenant

NOW = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)
DAY = 86_400
USERS = [f"u{i}" for i in range(40)]
# Where customer i's goal falls, by i % 5, relative to enrolment.
ORDER_AT = {0: 3 * DAY, 1: 10 * DAY, 2: 10 * DAY + 1, 3: -DAY, 4: None}
ORDER_HITS = {0, 1}  # inside the 10-day window, or exactly on its end
STAGE_AT = {0: (2 * DAY, "loyalty"), 1: (6 * DAY, "loyalty"), 2: (DAY, "retention")}
STAGE_HITS = {0}  # loyalty within 5 days


def _workspace(db: Database, slug: str) -> tuple[int, dict[str, int]]:
    ws = make_tenant(db, slug).id
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
    ingest(db, ws, [
        {"type": "identify", "userId": u, "messageId": f"id-{u}", "traits": {"email": f"{u}@x.io"},
         "timestamp": "2024-06-01T00:00:00Z"}
        for u in USERS
    ])  # fmt: skip
    with db.session() as session:
        rows = session.execute(
            select(Customer.user_id, Customer.id).where(Customer.workspace_id == ws)
        )
        ids = {str(user): int(cid) for user, cid in rows}
    with db.transaction() as session:
        for cid in ids.values():
            repo.set_consent(session, ws, cid, "email", "marketing", True)
    return ws, ids


def _track(db: Database, ws: int, user: str, name: str, at: datetime, tag: str) -> None:
    ingest(db, ws, [{"type": "track", "event": name, "userId": user, "messageId": f"{tag}-{user}",
                     "timestamp": at.isoformat(), "properties": {"revenue": 10}}])  # fmt: skip


def _book(name: str, goal: dict[str, object]) -> pb.PlaybookDefinition:
    return pb.parse_playbook({
        "name": name, "trigger": {"type": "stage_changed", "to": "conversion"}, "goal": goal,
        "holdout": 0.4,
        "steps": [{"id": "hi", "type": "send", "category": "welcome",
                   "content": {"subject": "Hi", "text": "Hello"}}],
    })  # fmt: skip


def _expected(arms: dict[str, str], hits: set[str]) -> dict[str, tuple[int, int]]:
    """(enrolled, reached) per arm, counted from the journeys' arms and the worked-out hits."""
    out = {"treatment": (0, 0), "control": (0, 0)}
    for user, arm in arms.items():
        n, r = out[arm]
        out[arm] = (n + 1, r + (user in hits))
    return out


def _wald(t: tuple[int, int], c: tuple[int, int]) -> tuple[float, float, float]:
    pt, pc = t[1] / t[0], c[1] / c[0]
    se = math.sqrt(pt * (1 - pt) / t[0] + pc * (1 - pc) / c[0])
    return pt - pc, pt - pc - 1.96 * se, pt - pc + 1.96 * se


def test_report_counts_goals_inside_each_journeys_window(db: Database) -> None:
    ws, ids = _workspace(db, "shop")
    other, _ = _workspace(db, "other")
    pb.apply_playbook(db, ws, _book("buy", {"event": "Order Completed", "within_days": 10}))
    pb.apply_playbook(db, ws, _book("climb", {"stage": "loyalty", "within_days": 5}))
    ingest(db, ws, [
        {"type": "track", "event": "lifecycle_stage_changed", "userId": u, "messageId": f"lc-{u}",
         "timestamp": NOW.isoformat(), "properties": {"from_stage": "acquisition",
                                                       "to_stage": "conversion"}}
        for u in USERS
    ])  # fmt: skip
    tick(db, ws, NOW)
    with db.session() as session:
        journeys = session.execute(
            select(EngageJourney.playbook_name, EngageJourney.customer_id, EngageJourney.arm,
                   EngageJourney.enrolled_ts).where(EngageJourney.workspace_id == ws)
        ).all()  # fmt: skip
    by_id = {cid: u for u, cid in ids.items()}
    arms = {name: {by_id[j.customer_id]: j.arm for j in journeys if j.playbook_name == name}
            for name in ("buy", "climb")}  # fmt: skip
    enrolled = {by_id[j.customer_id]: j.enrolled_ts for j in journeys}
    assert len(arms["buy"]) == len(arms["climb"]) == len(USERS)
    assert {"treatment", "control"} == set(arms["buy"].values())

    definition = get_stage_model(db, ws)[0].id
    for i, user in enumerate(USERS):
        start = datetime.fromtimestamp(enrolled[user], UTC)
        offset = ORDER_AT[i % 5]
        if offset is not None:
            _track(db, ws, user, "Order Completed", start + timedelta(seconds=offset), "o")
        _track(db, ws, user, "Order Cancelled", start + timedelta(days=1), "x")  # not the goal
        _track(db, other, user, "Order Completed", start + timedelta(days=1), "elsewhere")
    with db.transaction() as session:
        for i, user in enumerate(USERS):
            if i % 5 in STAGE_AT:
                after, stage = STAGE_AT[i % 5]
                session.add(StageTransition(
                    workspace_id=ws, definition_id=definition, customer_id=ids[user],
                    ts=enrolled[user] + after,
                    occurred_at=datetime.fromtimestamp(enrolled[user] + after, UTC),
                    from_stage="conversion", to_stage=stage, kind="forward", rule="test",
                ))  # fmt: skip

    for name, hits in (("buy", ORDER_HITS), ("climb", STAGE_HITS)):
        reached = {u for i, u in enumerate(USERS) if i % 5 in hits}
        want = _expected(arms[name], reached)
        report = pb.playbook_report(db, ws, name)
        got = {arm: (r.enrolled, r.reached_goal) for arm, r in
               (("treatment", report.treatment), ("control", report.control))}  # fmt: skip
        assert got == want, name
        uplift, low, high = _wald(want["treatment"], want["control"])
        assert report.uplift == pytest.approx(uplift, abs=1e-4)
        assert report.ci_low == pytest.approx(low, abs=1e-4)
        assert report.ci_high == pytest.approx(high, abs=1e-4)
        assert sum(report.states.values()) == len(USERS)


def test_a_playbook_without_goal_reports_arms_only(db: Database) -> None:
    ws, _ = _workspace(db, "shop")
    book = _book("plain", {"event": "Order Completed"}).model_copy(update={"goal": None})
    pb.apply_playbook(db, ws, book)
    report = pb.playbook_report(db, ws, "plain")
    assert report.goal is None and report.uplift is None
    assert report.treatment.enrolled == report.control.enrolled == 0
