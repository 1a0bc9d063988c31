"""One customer's failure stays that customer's (issue 16, item 11).

A trait that breaks a template used to raise out of the whole workspace's engagement tick: the
API answered 500, nobody else got their message, and referrals and points stopped too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.schedule import run_due
from clm.engage.referrals import service as referrals
from clm.engage.referrals.earning import EarningRule, PointsProgram, set_points_program
from clm.engage.schemas import Policy
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.models import EngageJourney, EngageJourneyLog, EngageMessage, EngagePlaybook
from tests.conftest import LiveServer, make_tenant
from tests.engage.conftest import add_customer
from tests.engage.test_referrals import PROGRAM

UPGRADED = {
    "name": "upgraded",
    "trigger": {"type": "event", "event": "Plan Upgraded"},
    "steps": [
        {"id": "thanks", "type": "send", "category": "account", "purpose": "transactional",
         "content": {"subject": "Thanks",
                     "text": "You now have {{ customer.traits.credits + 10 }} credits"}},
        {"id": "later", "type": "wait", "days": 7},
    ],
}  # fmt: skip


def test_a_template_failing_for_one_customer_spares_the_rest_of_the_tick(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    db = live_server.db
    shop = make_tenant(db)
    ws = shop.id
    now = datetime.now(UTC)
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
    credits = {"ann": 5, "bob": "lots", "cat": 0}  # "lots" + 10 raises TypeError in the template
    ids = {user: add_customer(db, ws, user, traits={"credits": c}, at=now - timedelta(days=1))
           for user, c in credits.items()}  # fmt: skip
    pb.apply_playbook(db, ws, pb.parse_playbook(UPGRADED))
    set_points_program(db, ws, PointsProgram(rules=[EarningRule(points_per_unit=1)]))
    referrals.set_program(db, ws, PROGRAM)
    code = next(c for c in referrals.issue_codes(db, ws, now, stages=[])
                if c.customer_id == ids["ann"])  # fmt: skip
    landing = referrals.record_click(db, code.code, now, user_agent="pytest")
    step = timedelta(seconds=1)
    ingest(db, ws, [
        {"type": "identify", "userId": "dan", "anonymousId": landing.anonymous_id,
         "messageId": "signup-dan", "traits": {"email": "dan@example.org"},
         "timestamp": (now + step).isoformat()},
        {"type": "track", "event": "Order Completed", "userId": "dan", "messageId": "o-dan",
         "timestamp": (now + 2 * step).isoformat(), "properties": {"revenue": 80.0}},
        *({"type": "track", "event": "Plan Upgraded", "userId": user,
           "messageId": f"up-{user}", "timestamp": (now + 2 * step).isoformat()}
          for user in credits),
    ], received_at=now + 2 * step)  # fmt: skip

    auth = {"Authorization": f"Bearer {shop.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        response = http.post("/api/v1/engage/tick")
    assert response.status_code == 200, response.text
    alerts = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.getMessage(), getattr(r, "customer_id", None)) for r in alerts] == [
        ("message could not be rendered", ids["bob"])
    ]
    report = response.json()
    assert report["errors"] == []  # the failure was kept to Bob's journey
    assert report["enrolled"] == 3 and report["sends"] == 3
    assert report["points_earned"] == 80  # Dan's order: 80 × 1 point
    assert report["referrals"]["attributed"] == 1 and report["referrals"]["qualified"] == 1

    with db.session() as session:
        messages = {m.customer_id: m for m in session.scalars(select(EngageMessage))}
        journeys = {j.customer_id: j for j in session.scalars(select(EngageJourney))}
        bob_log = list(session.scalars(
            select(EngageJourneyLog).where(EngageJourneyLog.journey_id == journeys[ids["bob"]].id)
            .order_by(EngageJourneyLog.id)))  # fmt: skip
    assert messages[ids["ann"]].status == "pending"
    assert messages[ids["ann"]].payload["text"] == "You now have 15 credits"
    assert messages[ids["cat"]].payload["text"] == "You now have 10 credits"
    assert messages[ids["bob"]].status == "dead"
    assert "TypeError" in (messages[ids["bob"]].last_error or "")
    assert (journeys[ids["ann"]].state, journeys[ids["cat"]].state) == ("active", "active")
    assert journeys[ids["bob"]].state == "failed"
    errors = [(e.step, e.detail) for e in bob_log if e.action == "error"]
    assert len(errors) == 1 and errors[0][0] == "thanks" and "TypeError" in errors[0][1]


def test_a_stored_playbook_that_no_longer_validates_fails_only_its_own_journeys(
    db: Database,
) -> None:
    """A playbook stored before categories were closed ("up-sell") stops its journeys with the
    reason; the workspace's other playbooks go on."""
    ws = make_tenant(db).id
    now = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
    ann = add_customer(db, ws, "ann")
    for name in ("legacy", "fine"):
        pb.apply_playbook(db, ws, pb.parse_playbook({
            "name": name, "trigger": {"type": "event", "event": "Plan Upgraded"},
            "steps": [{"id": "hi", "type": "send", "category": "receipt",
                       "purpose": "transactional", "content": {"text": f"{name}"}}],
        }))  # fmt: skip
    ingest(db, ws, [{"type": "track", "event": "Plan Upgraded", "userId": "ann",
                     "messageId": "up-1", "timestamp": now.isoformat()}])  # fmt: skip
    with db.transaction() as session:  # as an older version of CLM stored it
        row = session.scalars(select(EngagePlaybook).where(EngagePlaybook.name == "legacy")).one()
        definition = dict(row.definition)
        definition["steps"] = [{**definition["steps"][0], "category": "up-sell"}]
        row.definition = definition
        # Ann was enrolled in it before the upgrade, on an earlier tick.
        session.add(EngageJourney(
            workspace_id=ws, playbook_id=row.id, playbook_name="legacy", customer_id=ann,
            arm="treatment", state="active", step=0, wake_at=now, enrolled_at=now,
            enrolled_ts=int(now.timestamp()), updated_at=now))  # fmt: skip
    report = run_due(db, ws, now)
    # The valid playbook enrols and sends; the broken one enrols nobody new.
    assert report.errors == [] and report.sends == 1
    with db.session() as session:
        states = {
            j.playbook_name: j.state
            for j in session.scalars(select(EngageJourney).where(EngageJourney.customer_id == ann))
        }
        texts = [m.payload["text"] for m in session.scalars(select(EngageMessage))]
        errors = [e.detail for e in session.scalars(
            select(EngageJourneyLog).where(EngageJourneyLog.action == "error"))]  # fmt: skip
    assert states == {"legacy": "failed", "fine": "completed"}
    assert texts == ["fine"]
    assert len(errors) == 1 and "category" in errors[0]
