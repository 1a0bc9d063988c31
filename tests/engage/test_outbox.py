"""Outbox and channels end to end: real SMTP on loopback, real HTTP receivers, retries."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from sqlalchemy import select, update

from clm.config import get_settings
from clm.engage import repository as repo
from clm.engage.delivery import deliver as delivery
from clm.engage.delivery import outbox
from clm.engage.delivery.channels import SIGNATURE_HEADER, verify_webhook
from clm.engage.schemas import (
    Content,
    EmailProvider,
    Policy,
    SendRequest,
    SmsProvider,
    WebhookProvider,
)
from clm.store.engine import Database
from clm.store.models import EngageMessage, Event
from tests.conftest import make_tenant
from tests.engage.conftest import HttpReceiver, SmtpSink, add_customer

NOON = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)
WELCOME = Content(
    subject="Welcome, {{ first_name }}!",
    text="Hi {{ first_name }}, you are in stage {{ stage }}.",
    html="<p>Hi {{ first_name }} &amp; {{ customer.traits.company }}</p>",
)


def setup_workspace(db: Database, **policy: object) -> int:
    tenant = make_tenant(db)
    with db.transaction() as session:
        repo.set_policy(session, tenant.id, Policy.model_validate({"quiet_hours": None, **policy}))
    return tenant.id


def consent(db: Database, ws: int, customer: int, channel: str = "email") -> None:
    with db.transaction() as session:
        repo.set_consent(session, ws, customer, channel, "marketing", True)  # type: ignore[arg-type]


def welcome(customer: int, key: str = "welcome-1", **changes: object) -> SendRequest:
    data: dict[str, object] = {
        "customer_id": customer,
        "channel": "email",
        "category": "welcome",
        "content": WELCOME,
        "idempotency_key": key,
        "context": {"stage": "conversion"},
    }
    data.update(changes)
    return SendRequest.model_validate(data)


def test_email_is_rendered_delivered_and_logged(db: Database, smtp_sink: SmtpSink) -> None:
    ws = setup_workspace(db)
    ada = add_customer(db, ws, "ada", traits={"first_name": "Ada Lovelace", "company": "A&B"})
    consent(db, ws, ada)
    with db.transaction() as session:
        repo.set_provider(
            session, ws, EmailProvider(host=smtp_sink.host, port=smtp_sink.port, sender="s@x.io")
        )
    decided = outbox.send(db, ws, [welcome(ada)], now=NOON)
    assert [d.status for d in decided] == ["pending"]
    # Deciding twice with the same key records one message.
    outbox.send(db, ws, [welcome(ada)], now=NOON)
    report = delivery.deliver_due(db, now=NOON)
    assert (report.claimed, report.sent) == (1, 1)
    assert delivery.deliver_due(db, now=NOON + timedelta(hours=1)).claimed == 0

    [mail] = smtp_sink.messages
    assert mail["Subject"] == "Welcome, Ada!"
    assert mail["To"] == "ada@example.com"
    assert mail["X-CLM-Idempotency-Key"] == "welcome-1"
    assert mail["List-Unsubscribe"].startswith("<http://clm.test/public/unsubscribe?token=")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Hi Ada, you are in stage conversion." in text
    assert "Unsubscribe: http://clm.test/public/unsubscribe" in text
    assert "A&amp;B" in html  # autoescaped
    with db.session() as session:
        sent = session.scalars(select(Event).where(Event.name == "Email Sent")).all()
    assert [e.properties["category"] for e in sent] == ["welcome"]
    assert [e.channel for e in sent] == ["system"]


def test_blocked_sends_are_recorded_with_their_reason(db: Database) -> None:
    ws = setup_workspace(db)
    bob = add_customer(db, ws, "bob")  # no consent given
    [decided] = outbox.send(db, ws, [welcome(bob)], now=NOON)
    assert (decided.status, decided.reason) == ("blocked", "no marketing consent on this channel")
    with db.session() as session:
        row = session.scalars(select(EngageMessage)).one()
        event = session.scalars(select(Event).where(Event.name == "Message Blocked")).one()
    assert (row.status, row.reason) == ("blocked", "no marketing consent on this channel")
    assert event.properties["reason"] == "no marketing consent on this channel"
    # CLM's own action, not the customer's touchpoint: on the system channel.
    assert (event.channel, event.properties["message_channel"]) == ("system", "email")
    assert delivery.deliver_due(db, now=NOON).claimed == 0


def test_webhook_is_signed_and_carries_the_idempotency_key(
    sqlite_db: Database, http_receiver: HttpReceiver
) -> None:
    db = sqlite_db
    ws = setup_workspace(db)
    cid = add_customer(db, ws, "cy")
    consent(db, ws, cid, "webhook")
    with db.transaction() as session:
        repo.set_provider(
            session, ws, WebhookProvider(url=f"{http_receiver.url}/hook", secret="whsec-123")
        )
    content = Content(body={"customer": "{{ customer.id }}", "event": "welcome"})
    outbox.send(db, ws, [welcome(cid, channel="webhook", content=content)], now=NOON)
    assert delivery.deliver_due(db, now=NOON).sent == 1
    [hit] = http_receiver.requests
    assert hit.path == "/hook"
    assert verify_webhook("whsec-123", hit.body, hit.headers[SIGNATURE_HEADER])
    assert not verify_webhook("wrong", hit.body, hit.headers[SIGNATURE_HEADER])
    assert not verify_webhook("whsec-123", hit.body + b" ", hit.headers[SIGNATURE_HEADER])
    assert http_receiver.json(0) == {"customer": str(cid), "event": "welcome"}
    assert hit.headers["Idempotency-Key"] == "welcome-1"


def test_sms_through_a_twilio_compatible_api(
    sqlite_db: Database, http_receiver: HttpReceiver
) -> None:
    db = sqlite_db
    ws = setup_workspace(db)
    cid = add_customer(db, ws, "dee", traits={"phone": "+15550100", "first_name": "Dee"})
    consent(db, ws, cid, "sms")
    with db.transaction() as session:
        repo.set_provider(
            session,
            ws,
            SmsProvider(
                base_url=http_receiver.url, account_sid="AC1", auth_token="tok", sender="+1555"
            ),
        )
    sms = Content(text="Hi {{ first_name }}, 10% off today")
    outbox.send(db, ws, [welcome(cid, channel="sms", content=sms)], now=NOON)
    assert delivery.deliver_due(db, now=NOON).sent == 1
    [hit] = http_receiver.requests
    assert hit.path == "/2010-04-01/Accounts/AC1/Messages.json"
    assert parse_qs(hit.body.decode()) == {
        "To": ["+15550100"],
        "From": ["+1555"],
        "Body": ["Hi Dee, 10% off today"],
    }
    assert hit.headers["Authorization"] == "Basic " + base64.b64encode(b"AC1:tok").decode()
    assert hit.headers["I-Twilio-Idempotency-Token"] == "welcome-1"


def test_retries_back_off_then_dead_letter(
    sqlite_db: Database, http_receiver: HttpReceiver
) -> None:
    db = sqlite_db
    ws = setup_workspace(db, max_attempts=3, backoff_seconds=10)
    cid = add_customer(db, ws, "eve")
    consent(db, ws, cid, "webhook")
    with db.transaction() as session:
        repo.set_provider(session, ws, WebhookProvider(url=http_receiver.url, secret="s"))
    http_receiver.statuses = [500, 503, 500, 500]
    outbox.send(db, ws, [welcome(cid, channel="webhook")], now=NOON)
    assert delivery.deliver_due(db, now=NOON).retried == 1
    with db.session() as session:
        row = session.scalars(select(EngageMessage)).one()
    assert row.next_attempt_at == NOON + timedelta(seconds=10)
    assert row.last_error == "webhook: HTTP 500"
    assert delivery.deliver_due(db, now=NOON + timedelta(seconds=5)).claimed == 0  # not yet due
    assert delivery.deliver_due(db, now=NOON + timedelta(seconds=10)).retried == 1
    later = NOON + timedelta(seconds=30)  # 10 s, then 20 s
    assert delivery.deliver_due(db, now=later).dead == 1
    with db.session() as session:
        row = session.scalars(select(EngageMessage)).one()
    assert (row.status, row.attempts) == ("dead", 3)
    assert len(http_receiver.requests) == 3


def test_permanent_errors_are_not_retried(sqlite_db: Database, http_receiver: HttpReceiver) -> None:
    db = sqlite_db
    ws = setup_workspace(db)
    cid = add_customer(db, ws, "fay")
    consent(db, ws, cid, "webhook")
    with db.transaction() as session:
        repo.set_provider(session, ws, WebhookProvider(url=http_receiver.url, secret="s"))
    http_receiver.statuses = [400]
    outbox.send(db, ws, [welcome(cid, channel="webhook")], now=NOON)
    assert delivery.deliver_due(db, now=NOON).dead == 1


def test_quiet_hours_hold_then_send_and_unsubscribe_before_delivery_wins(
    sqlite_db: Database, smtp_sink: SmtpSink
) -> None:
    db = sqlite_db
    ws = setup_workspace(db, quiet_hours={"start": "21:00", "end": "08:00"})
    tokyo = add_customer(db, ws, "kenji", traits={"timezone": "Asia/Tokyo"})
    paris = add_customer(db, ws, "zoe", traits={"timezone": "Europe/Paris"})
    for cid in (tokyo, paris):
        consent(db, ws, cid)
    with db.transaction() as session:
        repo.set_provider(session, ws, EmailProvider(host=smtp_sink.host, port=smtp_sink.port))
    decided = outbox.send(db, ws, [welcome(tokyo, "k1"), welcome(paris, "k2")], now=NOON)
    assert [d.status for d in decided] == ["held", "pending"]
    assert delivery.deliver_due(db, now=NOON).sent == 1
    # Zoe unsubscribes; Kenji's held message goes out when his morning comes.
    with db.transaction() as session:
        repo.suppress(session, ws, "email", "kenji@example.com", "unsubscribed")
    report = delivery.deliver_due(db, now=datetime(2024, 6, 12, 23, 0, tzinfo=UTC))
    assert (report.claimed, report.sent, report.blocked) == (1, 0, 1)
    assert [m["To"] for m in smtp_sink.messages] == ["zoe@example.com"]


def test_a_send_whose_event_a_killed_worker_never_wrote_is_logged_by_the_sweep(
    db: Database,
) -> None:
    """The state a SIGKILL leaves between marking a message sent (right after SMTP's 250) and
    writing the batch's events: the sweep writes the event once, dated when it was sent."""
    ws = setup_workspace(db)
    ada = add_customer(db, ws, "ada")
    bob = add_customer(db, ws, "bob")
    for customer in (ada, bob):
        consent(db, ws, customer)
    decided = outbox.send(db, ws, [welcome(ada, "w-ada"), welcome(bob, "w-bob")], now=NOON)
    assert [d.status for d in decided] == ["pending", "pending"]
    sent_at = {ada: NOON + timedelta(seconds=5), bob: NOON + timedelta(minutes=10)}
    with db.transaction() as session:
        for customer, at in sent_at.items():  # what the recorder commits, and nothing after
            session.execute(
                update(EngageMessage)
                .where(EngageMessage.customer_id == customer)
                .values(status="sent", sent_at=at, lease_until=None)
            )
    # Bob's send is younger than a lease: his batch may still be writing its events.
    lease = timedelta(seconds=get_settings().engage_lease_seconds)
    now = NOON + timedelta(minutes=10) + lease / 2
    assert delivery.log_missed_sends(db, now) == 1
    assert delivery.log_missed_sends(db, now) == 0  # written once
    assert delivery.log_missed_sends(db, now + lease) == 1  # Bob's, once his lease is over
    assert delivery.log_missed_sends(db, now + lease) == 0
    with db.session() as session:
        logged = session.execute(
            select(Event.message_id, Event.ts, Event.properties).where(Event.name == "Email Sent")
        ).all()
    assert sorted((m, ts) for m, ts, _ in logged) == [
        ("clm-engage-sent-w-ada", int(sent_at[ada].timestamp())),
        ("clm-engage-sent-w-bob", int(sent_at[bob].timestamp())),
    ]
    assert {p["category"] for _, _, p in logged} == {"welcome"}
