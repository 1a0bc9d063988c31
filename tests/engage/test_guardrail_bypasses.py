"""The rule "no upsell unless happy and stable" cannot be side-stepped (issue 16, item 7).

Three bypasses were reproduced: a free-text category (``cross-sell`` is not ``cross_sell``), an
upsell labelled ``purpose: transactional`` (which skips consent), and health checked only when
the message was decided, so an upsell held for quiet hours went out after the customer turned
unhappy.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError as PydanticError
from sqlalchemy import select
from typer.testing import CliRunner

from clm.cli import app
from clm.engage import repository as repo
from clm.engage.delivery import outbox
from clm.engage.delivery.deliver import deliver_due
from clm.engage.playbooks.service import parse_playbook
from clm.engage.schemas import Content, EmailProvider, FrequencyCap, Policy, QuietHours, SendRequest
from clm.errors import ValidationError
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.models import EngageMessage, Event
from tests.conftest import LiveServer, make_tenant
from tests.engage.conftest import SmtpSink, add_customer

MISSPELT = ["cross-sell", "up-sell", "crosssell", "Up Sell", "upsale"]
EVENING = datetime(2024, 6, 12, 20, 0, tzinfo=UTC)  # quiet hours start at 21:00 UTC


def upsell(customer: int, **changes: object) -> SendRequest:
    data: dict[str, object] = {
        "customer_id": customer,
        "channel": "email",
        "category": "upsell",
        "content": Content(subject="Go Pro", text="Upgrade today"),
        "idempotency_key": f"upsell-{customer}",
    }
    data.update(changes)
    return SendRequest.model_validate(data)


def playbook(category: str, purpose: str = "marketing") -> str:
    return f"""
name: pitch
trigger: {{type: stage_changed, to: loyalty}}
steps:
  - id: offer
    type: send
    category: {category}
    purpose: {purpose}
    content: {{subject: Go Pro, text: Upgrade today}}
"""


@pytest.mark.parametrize("category", MISSPELT)
def test_an_unknown_category_is_refused_by_the_request_and_the_playbook(category: str) -> None:
    with pytest.raises(PydanticError, match="category"):
        upsell(1, category=category)
    with pytest.raises(ValidationError) as caught:
        parse_playbook(playbook(f'"{category}"'))
    assert [e.loc for e in caught.value.errors] == [("steps", 0, "category")]


def test_known_categories_still_pass_in_any_case() -> None:
    assert upsell(1, category="Cross_Sell").category == "cross_sell"
    assert parse_playbook(playbook("cross_sell")).steps[0].category == "cross_sell"


@pytest.mark.parametrize("category", ["upsell", "cross_sell", "promotion", "winback"])
def test_a_commercial_category_can_never_be_transactional(category: str) -> None:
    with pytest.raises(PydanticError, match="commercial"):
        upsell(1, category=category, purpose="transactional")
    with pytest.raises(ValidationError, match="Invalid playbook"):
        parse_playbook(playbook(category, "transactional"))
    # A receipt is transactional by nature.
    assert upsell(1, category="receipt", purpose="transactional").purpose == "transactional"


def test_clm_playbook_validate_refuses_a_misspelt_category_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pitch.yaml"
    path.write_text(playbook("cross-sell"))
    result = CliRunner().invoke(app, ["playbook", "validate", str(path)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: Invalid playbook"), result.output
    assert "steps.0.category" in result.output and "cross_sell" in result.output
    assert "Traceback" not in result.output
    path.write_text(playbook("upsell", "transactional"))
    result = CliRunner().invoke(app, ["playbook", "validate", str(path)])
    assert result.exit_code == 1 and "commercial" in result.output


def test_the_api_refuses_misspelt_and_transactional_upsells(live_server: LiveServer) -> None:
    db = live_server.db
    tenant = make_tenant(db)
    ada = add_customer(db, tenant.id, "ada")
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    body = upsell(ada).model_dump(mode="json")
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        for wrong in ({"category": "cross-sell"}, {"purpose": "transactional"}):
            response = http.post("/api/v1/engage/messages", json=[{**body, **wrong}])
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["code"] == "validation_error", problem
            assert problem["errors"], problem
        playbook_body = parse_playbook(playbook("upsell")).model_dump(mode="json", by_alias=True)
        playbook_body["steps"][0]["category"] = "up-sell"
        response = http.post("/api/v1/engage/playbooks/validate", json=playbook_body)
        assert response.status_code == 422, response.text
        assert "category" in response.text
    with db.session() as session:
        assert session.scalar(select(EngageMessage.id)) is None  # nothing was queued


def _track(db: Database, ws: int, user: str, name: str, props: dict[str, object],
           at: datetime, key: str) -> None:  # fmt: skip
    ingest(db, ws, [{"type": "track", "userId": user, "event": name, "properties": props,
                     "timestamp": at.isoformat(), "messageId": key}])  # fmt: skip


def _happy_customer(db: Database, ws: int, user: str) -> int:
    """Regular orders and a 10 on NPS: happy, and for longer than the 14 stable days."""
    customer = add_customer(db, ws, user, at=EVENING - timedelta(days=60))
    for days in (50, 40, 30, 20, 10, 3):
        _track(db, ws, user, "Order Completed", {"revenue": 50},
               EVENING - timedelta(days=days), f"{user}-order-{days}")  # fmt: skip
    _track(db, ws, user, "NPS Survey Answered", {"score": 10},
           EVENING - timedelta(days=25), f"{user}-nps-1")  # fmt: skip
    with db.transaction() as session:
        repo.set_consent(session, ws, customer, "email", "marketing", True)
    return customer


def test_an_upsell_held_for_quiet_hours_is_blocked_if_the_customer_turned_unhappy(
    db: Database, smtp_sink: SmtpSink
) -> None:
    tenant = make_tenant(db)
    with db.transaction() as session:
        repo.set_policy(session, tenant.id, Policy(
            caps=[], quiet_hours=QuietHours(start=time(21), end=time(8))))  # fmt: skip
        repo.set_provider(session, tenant.id,
                          EmailProvider(host=smtp_sink.host, port=smtp_sink.port))  # fmt: skip
    ann = _happy_customer(db, tenant.id, "ann")
    bob = _happy_customer(db, tenant.id, "bob")
    late = EVENING + timedelta(hours=2)  # 22:00: quiet
    decided = outbox.send(db, tenant.id, [upsell(ann), upsell(bob)], now=late)
    assert [(d.status, d.reason) for d in decided] == [("held", "quiet hours in UTC")] * 2
    # Overnight Ann scores NPS 0, files two complaints and a CSAT of 1: unhappy.
    night = late + timedelta(hours=1)
    _track(db, tenant.id, "ann", "NPS Survey Answered", {"score": 0}, night, "ann-nps-2")
    _track(db, tenant.id, "ann", "CSAT Survey Answered", {"score": 1}, night, "ann-csat")
    for i in range(2):
        _track(db, tenant.id, "ann", "Complaint Filed", {}, night, f"ann-complaint-{i}")

    morning = datetime(2024, 6, 13, 8, 30, tzinfo=UTC)
    report = deliver_due(db, now=morning)
    assert (report.sent, report.blocked) == (1, 1)
    assert [str(m["To"]) for m in smtp_sink.messages] == ["bob@example.com"]
    with db.session() as session:
        rows = dict(session.execute(select(EngageMessage.customer_id, EngageMessage.reason)).all())
        statuses = dict(session.execute(
            select(EngageMessage.customer_id, EngageMessage.status)).all())  # fmt: skip
        blocked_event = session.scalar(select(Event).where(Event.name == "Message Blocked"))
    assert statuses == {ann: "blocked", bob: "sent"}
    assert rows[ann] == "upsell: health is unhappy"
    assert blocked_event is not None
    assert blocked_event.properties["reason"] == "upsell: health is unhappy"


def test_consent_revoked_and_a_tightened_cap_are_checked_again_at_delivery(
    db: Database, smtp_sink: SmtpSink
) -> None:
    tenant = make_tenant(db)
    with db.transaction() as session:
        repo.set_policy(session, tenant.id, Policy(caps=[], quiet_hours=None))
        repo.set_provider(session, tenant.id,
                          EmailProvider(host=smtp_sink.host, port=smtp_sink.port))  # fmt: skip
    ann = add_customer(db, tenant.id, "ann")
    bob = add_customer(db, tenant.id, "bob")
    for customer in (ann, bob):
        with db.transaction() as session:
            repo.set_consent(session, tenant.id, customer, "email", "marketing", True)
    news = [
        upsell(c, category="newsletter", idempotency_key=f"news-{c}-{i}")
        for c in (ann, bob) for i in range(2)
    ]  # fmt: skip
    decided = outbox.send(db, tenant.id, news, now=EVENING)
    assert [d.status for d in decided] == ["pending"] * 4
    with db.transaction() as session:
        repo.set_consent(session, tenant.id, ann, "email", "marketing", False)
        # One newsletter a day from now on: Bob's second one is over the cap.
        repo.set_policy(session, tenant.id, Policy(quiet_hours=None, caps=[
            FrequencyCap(channel="email", max_messages=1, window_hours=24)]))  # fmt: skip
    report = deliver_due(db, now=EVENING + timedelta(minutes=5))
    assert (report.sent, report.blocked) == (1, 3)
    with db.session() as session:
        reasons = sorted(
            (key, reason or "") for key, reason in session.execute(
                select(EngageMessage.idempotency_key, EngageMessage.reason))
        )  # fmt: skip
    assert reasons == [
        (f"news-{ann}-0", "consent revoked (marketing)"),
        (f"news-{ann}-1", "consent revoked (marketing)"),
        (f"news-{bob}-0", ""),
        (f"news-{bob}-1", "frequency cap: 1 email in 24h"),
    ]
