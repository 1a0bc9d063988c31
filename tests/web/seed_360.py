"""One customer with everything the customer 360 shows, seeded through CLM's own services
where one exists: survey answers with comments, a referral under review, points earned and
redeemed, a coupon, an e-mail delivered to a real SMTP server on loopback and an SMS blocked
for want of consent, a journey, a health score. The API test and the browser test both check
the page's values against the numbers worked out here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from clm.config import get_settings
from clm.engage import repository as repo
from clm.engage.delivery import deliver as delivery
from clm.engage.delivery import outbox
from clm.engage.playbooks import service as pb
from clm.engage.referrals import ledger
from clm.engage.referrals.coupons import CouponCreate, create_coupon
from clm.engage.schemas import Content, EmailProvider, Policy, SendRequest
from clm.ingest import ingest
from clm.lifecycle import run_lifecycle
from clm.lifecycle.health_service import run_health
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    EngageJourney,
    EngageJourneyLog,
    EngageReferral,
    EngageReferralCode,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BAD_COMMENT = "Delivery was late and nobody answered my emails. Terrible."
GOOD_COMMENT = "Great support, thank you!"
BLOCKED = "no marketing consent on this channel"
PLAYBOOK = {
    "name": "welcome",
    "trigger": {"type": "stage_changed", "to": "paying"},
    "steps": [
        {"id": "hello", "type": "send", "category": "onboarding",
         "content": {"subject": "Welcome", "text": "Glad you are here."}},
    ],
}  # fmt: skip


@dataclass
class Seeded:
    ann: int
    bob: int


def engage_settings(monkeypatch: pytest.MonkeyPatch, data_dir: str) -> None:
    """What sending needs: a secret for signed links, a public URL, no background notifier."""
    monkeypatch.setenv("CLM_SECRET_KEY", "test-secret-key-0123456789abcdef")
    monkeypatch.setenv("CLM_ENV", "test")
    monkeypatch.setenv("CLM_DATA_DIR", data_dir)
    monkeypatch.setenv("CLM_PUBLIC_URL", "http://clm.test")
    monkeypatch.setenv("CLM_ENGAGE_NOTIFY", "false")
    get_settings.cache_clear()


def _events() -> list[dict[str, Any]]:
    def at(day: str) -> str:
        return f"2026-{day}T10:00:00Z"

    events: list[dict[str, Any]] = [
        {"type": "identify", "userId": "ann", "timestamp": at("01-05"),
         "traits": {"email": "ann@example.com", "name": "Ann Example", "phone": "+15550100"}},
        {"type": "page", "userId": "ann", "timestamp": at("01-05"), "name": "Home"},
        {"type": "track", "userId": "ann", "event": "Order Completed", "timestamp": at("01-10"),
         "properties": {"revenue": 40}},
        {"type": "track", "userId": "ann", "event": "Order Completed", "timestamp": at("02-10"),
         "properties": {"revenue": 60}},
        {"type": "track", "userId": "ann", "event": "NPS Survey Answered",
         "timestamp": at("02-15"), "properties": {"score": 3, "comment": BAD_COMMENT}},
        {"type": "track", "userId": "ann", "event": "survey_answered", "timestamp": at("02-20"),
         "properties": {"survey_id": "support", "survey_type": "csat", "score": 4,
                        "response_id": "r-1", "revision": 1}},
        {"type": "track", "userId": "ann", "event": "survey_answered", "timestamp": at("02-21"),
         "properties": {"survey_id": "support", "survey_type": "csat", "score": 4,
                        "response_id": "r-1", "revision": 2, "comment": GOOD_COMMENT}},
        {"type": "identify", "userId": "bob", "timestamp": at("02-01"),
         "traits": {"email": "bob@example.com"}},
        {"type": "track", "userId": "bob", "event": "Order Completed", "timestamp": at("02-02"),
         "properties": {"revenue": 25}},
    ]  # fmt: skip
    for n, event in enumerate(events):
        event["messageId"] = f"seed-{n}"
    return events


def _ids(db: Database, workspace_id: int) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(Customer.user_id, Customer.id).where(Customer.workspace_id == workspace_id)
        )
        return {str(u): int(c) for u, c in rows}


def seed(db: Database, workspace_id: int, smtp: tuple[str, int]) -> Seeded:
    ingest(db, workspace_id, _events())
    ids = _ids(db, workspace_id)
    ann, bob = ids["ann"], ids["bob"]
    run_lifecycle(db, workspace_id)
    run_health(db, workspace_id, now=NOW)
    with db.transaction() as session:
        repo.set_policy(session, workspace_id, Policy.model_validate({"quiet_hours": None}))
        repo.set_consent(session, workspace_id, ann, "email", "marketing", True)
        repo.set_provider(
            session, workspace_id, EmailProvider(host=smtp[0], port=smtp[1], sender="hi@x.io")
        )
        session.add(EngageReferralCode(workspace_id=workspace_id, customer_id=ann,
                                       code="ANN123", created_at=NOW))  # fmt: skip
        session.add(
            EngageReferral(
                workspace_id=workspace_id, code="ANN123", referrer_id=ann, referee_id=bob,
                status="review", created_at=NOW,
                checks=[
                    {"check": "same_ip", "flagged": True,
                     "detail": "signed up from the referrer's IP within 24 hours"},
                    {"check": "self_referral", "flagged": False, "detail": "different people"},
                ],
            )
        )  # fmt: skip
    # points: 120 + 30 - 50 = 100
    ledger.earn(db, workspace_id, ann, 120, "seed-earn-1", NOW, memo="first order")
    ledger.earn(db, workspace_id, ann, 30, "seed-earn-2", NOW, memo="review written")
    ledger.redeem(db, workspace_id, ann, 50, "seed-redeem-1", NOW, memo="gift card")
    create_coupon(
        db,
        workspace_id,
        CouponCreate(kind="amount", value=10, customer_id=ann, code="ANN-10OFF",
                     source="playbook:winback"),
        NOW,
    )  # fmt: skip
    content = Content(subject="Welcome, Ann", text="Glad you are here.")
    requests = [
        SendRequest(customer_id=ann, channel="email", category="onboarding", content=content,
                    idempotency_key="seed-mail", source="playbook:welcome:v1:hello"),
        SendRequest(customer_id=ann, channel="sms", category="onboarding",
                    content=Content(text="Welcome!"), idempotency_key="seed-sms",
                    source="playbook:welcome:v1:hello"),
    ]  # fmt: skip
    outbox.send(db, workspace_id, requests, now=NOW)
    report = delivery.deliver_due(db, now=NOW)
    assert report.sent == 1, report
    book = pb.apply_playbook(db, workspace_id, pb.parse_playbook(PLAYBOOK))
    with db.transaction() as session:
        journey = EngageJourney(
            workspace_id=workspace_id, playbook_id=book.id, playbook_name="welcome",
            customer_id=ann, arm="treatment", step=0, state="waiting", wake_at=NOW,
            enrolled_at=NOW, enrolled_ts=int(NOW.timestamp()), updated_at=NOW,
        )  # fmt: skip
        session.add(journey)
        session.flush()
        log = EngageJourneyLog(
            workspace_id=workspace_id, journey_id=journey.id, step="hello", action="sent",
            detail="email", at=NOW,
        )  # fmt: skip
        session.add(log)
    return Seeded(ann=ann, bob=bob)
