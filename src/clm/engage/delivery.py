"""Delivery: claim due outbox messages under a lease, send them, record what happened.

At least once: a worker killed mid-delivery leaves rows in ``sending`` whose lease expires;
the next pass sends them again under the same idempotency key. Failures back off
exponentially (``backoff_seconds * 2**(attempt-1)``) and dead-letter after
``Policy.max_attempts``; permanent errors (4xx, refused recipient) dead-letter at once.
Suppression and consent are checked again right before sending: an unsubscribe wins.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage.channels import DeliveryError, SmtpSession, send_sms, send_webhook
from clm.engage.outbox import BLOCKED_EVENT, SENT_EVENT
from clm.engage.schemas import (
    DeliveryReport,
    EmailProvider,
    Policy,
    SmsProvider,
    WebhookProvider,
)
from clm.engage.settings import get_engage_settings
from clm.errors import NotFound
from clm.store.engine import Database
from clm.store.models import EngageMessage


@dataclass
class Claimed:
    id: int
    workspace_id: int
    customer_id: int | None
    channel: str
    purpose: str
    category: str
    address: str | None
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int


def claim(db: Database, now: datetime, limit: int, lease_seconds: float) -> list[Claimed]:
    """Take up to ``limit`` due messages under a lease (skipping rows other workers hold)."""
    due = or_(
        and_(EngageMessage.status.in_(("pending", "held")), EngageMessage.next_attempt_at <= now),
        and_(EngageMessage.status == "sending", EngageMessage.lease_until < now),
    )
    m = EngageMessage
    columns = (m.id, m.workspace_id, m.customer_id, m.channel, m.purpose, m.category, m.address,
               m.payload, m.idempotency_key, m.attempts)  # fmt: skip
    with db.transaction() as session:
        # Plain rows and one UPDATE: ORM objects for a batch cost more than its queries.
        query = select(*columns).where(due).order_by(m.id).limit(limit)
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).all()
        if rows:
            session.execute(
                update(m)
                .where(m.id.in_([r.id for r in rows]))
                .values(
                    status="sending",
                    lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=m.attempts + 1,
                )
            )
        claimed = [
            Claimed(r.id, r.workspace_id, r.customer_id, r.channel, r.purpose, r.category,
                    r.address, dict(r.payload), r.idempotency_key, r.attempts + 1)
            for r in rows
        ]  # fmt: skip
    return claimed


Provider = EmailProvider | SmsProvider | WebhookProvider


def deliver_due(
    db: Database,
    *,
    now: datetime | None = None,
    limit: int | None = None,
    http: httpx.Client | None = None,
) -> DeliveryReport:
    """One pass of the worker: claim due messages, deliver them, record the outcomes."""
    settings = get_engage_settings()
    at = now or datetime.now(UTC)
    claimed = claim(db, at, limit or settings.engage_batch_size, settings.engage_lease_seconds)
    report = DeliveryReport(claimed=len(claimed))
    if not claimed:
        return report
    groups: dict[tuple[int, str], list[Claimed]] = {}
    for message in claimed:
        groups.setdefault((message.workspace_id, message.channel), []).append(message)
    outcomes: dict[int, str | None] = {}  # id -> None (sent) or error text
    permanent: set[int] = set()
    revoked: dict[int, str] = {}
    opened: list[httpx.Client] = []

    def client() -> httpx.Client:  # made on first need: an email-only batch needs none
        if http is not None:
            return http
        if not opened:
            opened.append(httpx.Client())
        return opened[0]

    try:
        for (workspace_id, channel), messages in groups.items():
            with db.session() as session:
                policy = repo.get_policy(session, workspace_id)
                try:
                    provider: Provider | None = repo.get_provider(session, workspace_id, channel)
                except NotFound:
                    provider = None
                revoked.update(_still_allowed(session, workspace_id, channel, messages, at))
            sendable = [m for m in messages if m.id not in revoked]
            _deliver_group(provider, sendable, client, outcomes, permanent)
            _finish(db, policy, messages, outcomes, permanent, revoked, at, report)
    finally:
        for made in opened:
            made.close()
    _sent_events(db, claimed, outcomes, revoked, at)
    return report


def _still_allowed(
    session: Session, workspace_id: int, channel: str, messages: list[Claimed], at: datetime
) -> dict[int, str]:
    """Re-check suppression and consent at delivery: an unsubscribe since the decision wins."""
    ids = [m.customer_id for m in messages if m.customer_id is not None]
    profiles = repo.customer_profiles(session, workspace_id, ids)
    lenient = Policy(
        marketing_requires_opt_in=False, caps=[], quiet_hours=None, upsell_requires_happy=False
    )
    url = (repo.get_config(session, workspace_id, "channel", "webhook") or {}).get("url")
    facts = repo.load_facts(session, workspace_id, channel, profiles, ids, lenient, at, url)
    stopped: dict[int, str] = {}
    for m in messages:
        fact = facts.get(m.customer_id) if m.customer_id is not None else None
        if fact is None:
            continue
        fact.address = m.address
        marketing = m.purpose == "marketing"
        consent = fact.consents.get((channel, m.purpose))
        hard = [r for r in fact.suppressions if r != "unsubscribed"]
        if hard or (marketing and "unsubscribed" in fact.suppressions):
            stopped[m.id] = f"suppressed: {(hard or ['unsubscribed'])[0]}"
        elif consent is False:
            stopped[m.id] = f"consent revoked ({m.purpose})"
    return stopped


def _deliver_group(
    provider: Provider | None,
    messages: list[Claimed],
    client: Callable[[], httpx.Client],
    outcomes: dict[int, str | None],
    permanent: set[int],
) -> None:
    if not messages:
        return
    if provider is None:
        for m in messages:
            outcomes[m.id] = f"no {m.channel} provider configured"
        return
    if isinstance(provider, EmailProvider):
        # Several connections at once: each waits on the server's replies in turn.
        lanes = [messages[i :: provider.connections] for i in range(provider.connections)]
        lanes = [lane for lane in lanes if lane]
        with ThreadPoolExecutor(len(lanes)) as pool:
            for found, failed in pool.map(lambda lane: _send_email(provider, lane), lanes):
                outcomes.update(found)
                permanent.update(failed)
        return
    http = client()
    for m in messages:
        try:
            if isinstance(provider, SmsProvider):
                send_sms(http, provider, m)
            else:
                assert isinstance(provider, WebhookProvider)
                send_webhook(http, provider, m)
            outcomes[m.id] = None
        except DeliveryError as exc:
            outcomes[m.id] = str(exc)
            if exc.permanent:
                permanent.add(m.id)


def _send_email(
    provider: EmailProvider, messages: list[Claimed]
) -> tuple[dict[int, str | None], set[int]]:
    """Send over one SMTP connection: (id -> None or the error, the permanent failures)."""
    outcomes: dict[int, str | None] = {}
    permanent: set[int] = set()
    smtp = SmtpSession(provider)
    try:
        for m in messages:
            try:
                smtp.send(m)
                outcomes[m.id] = None
            except DeliveryError as exc:
                outcomes[m.id] = str(exc)
                if exc.permanent:
                    permanent.add(m.id)
    finally:
        smtp.close()
    return outcomes, permanent


def _finish(
    db: Database,
    policy: Policy,
    messages: list[Claimed],
    outcomes: dict[int, str | None],
    permanent: set[int],
    revoked: dict[int, str],
    at: datetime,
    report: DeliveryReport,
) -> None:
    sent = [m.id for m in messages if m.id in outcomes and outcomes[m.id] is None]
    with db.transaction() as session:
        if sent:
            session.execute(
                update(EngageMessage)
                .where(EngageMessage.id.in_(sent))
                .values(status="sent", sent_at=at, lease_until=None, last_error=None)
            )
        report.sent += len(sent)
        for m in messages:
            if m.id in revoked:
                values: dict[str, Any] = {"status": "blocked", "reason": revoked[m.id]}
                report.blocked += 1
            elif outcomes.get(m.id) is None:
                continue
            elif m.id in permanent or m.attempts >= policy.max_attempts:
                values = {"status": "dead", "last_error": outcomes[m.id]}
                report.dead += 1
            else:
                delay = policy.backoff_seconds * 2 ** (m.attempts - 1)
                values = {
                    "status": "pending",
                    "last_error": outcomes[m.id],
                    "next_attempt_at": at + timedelta(seconds=delay),
                }
                report.retried += 1
            session.execute(
                update(EngageMessage)
                .where(EngageMessage.id == m.id)
                .values(lease_until=None, **values)
            )


def _sent_events(
    db: Database,
    claimed: list[Claimed],
    outcomes: dict[int, str | None],
    revoked: dict[int, str],
    at: datetime,
) -> None:
    by_workspace: dict[int, list[Claimed]] = {}
    for m in claimed:
        if m.customer_id is not None and (outcomes.get(m.id, "x") is None or m.id in revoked):
            by_workspace.setdefault(m.workspace_id, []).append(m)
    for workspace_id, messages in by_workspace.items():
        with db.session() as session:
            profiles = repo.customer_profiles(
                session, workspace_id, [m.customer_id for m in messages if m.customer_id]
            )
        events = []
        for m in messages:
            assert m.customer_id is not None
            blocked = m.id in revoked
            events.append(
                eventlog.track(
                    profiles.get(m.customer_id),
                    BLOCKED_EVENT if blocked else SENT_EVENT[m.channel],
                    f"{'blocked' if blocked else 'sent'}-{m.idempotency_key}",
                    {
                        "message_id": m.id,
                        "channel": m.channel,
                        "category": m.category,
                        **({"reason": revoked[m.id]} if blocked else {}),
                    },
                    at,
                    channel=m.channel,
                )
            )
        eventlog.write(db, workspace_id, events)


def message_counts(db: Database, workspace_id: int) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(EngageMessage.status, func.count())
            .where(EngageMessage.workspace_id == workspace_id)
            .group_by(EngageMessage.status)
        )
        return {status: int(count) for status, count in rows}
