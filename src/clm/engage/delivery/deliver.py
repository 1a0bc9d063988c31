"""Delivery: claim due outbox messages under a lease, send them, record what happened.

Effectively once: each message is recorded as ``sent`` in its own small transaction as soon as
the server accepts it (SMTP 250, HTTP 2xx), before the next one on that connection is sent. A
worker killed mid-delivery leaves only the messages in flight in ``sending``; their lease
expires and the next pass sends them again under the same idempotency key, so a crash
re-sends at most one message per open connection (``EmailProvider.connections`` for email, one
for SMS and webhooks). Failures back off
exponentially (``backoff_seconds * 2**(attempt-1)``) and dead-letter after
``Policy.max_attempts``; permanent errors (4xx, refused recipient) dead-letter at once.
Every guardrail is checked again right before sending (``recheck``): an unsubscribe, a revoked
consent, a customer turned unhappy or a tightened cap wins over the earlier decision.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Executable, and_, bindparam, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from clm.config import get_settings
from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage.delivery.channels import DeliveryError, SmtpSession, send_sms, send_webhook
from clm.engage.delivery.guardrails import evaluate
from clm.engage.delivery.health import HealthFacts, health_facts
from clm.engage.delivery.outbox import BLOCKED_EVENT, SENT_EVENT
from clm.engage.schemas import (
    Decision,
    DeliveryReport,
    EmailProvider,
    Policy,
    SmsProvider,
    WebhookProvider,
)
from clm.errors import NotFound
from clm.store.engine import Database
from clm.store.models import EngageMessage, Event, table_of

log = logging.getLogger("clm.engage.delivery")
_MESSAGES = table_of(EngageMessage)
# Built once: it runs for every message sent.
_MARK_SENT = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id.in_(bindparam("ids", expanding=True)), _MESSAGES.c.status == "sending")
    .values(status="sent", sent_at=bindparam("at"), lease_until=None, last_error=None)
)


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
    settings = get_settings()
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
    revoked: dict[int, str] = {}  # blocked at delivery, with the reason
    held: dict[int, Decision] = {}  # quiet hours at delivery: back to waiting
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
            for message_id, verdict in recheck(
                db, workspace_id, channel, messages, policy, at
            ).items():
                if verdict.status == "held":
                    held[message_id] = verdict
                else:
                    revoked[message_id] = verdict.reason or "blocked"
            sendable = [m for m in messages if m.id not in revoked and m.id not in held]
            # The marks survive a kill of this process (the failure that matters here) without
            # an fsync each; after a power cut a message may go again, never be lost.
            with db.quick_commits() as commit:
                recorder = SentRecorder(commit, at)
                _deliver_group(provider, sendable, client, outcomes, permanent, recorder.record)
            _finish(db, policy, messages, outcomes, permanent, revoked, held, at, report)
    finally:
        for made in opened:
            made.close()
    _sent_events(db, claimed, outcomes, revoked, at)
    return report


def recheck(
    db: Database,
    workspace_id: int,
    channel: str,
    messages: list[Claimed],
    policy: Policy,
    at: datetime,
) -> dict[int, Decision]:
    """Every guardrail again at delivery, as of ``at``: the verdicts that are not "send now".

    Between the decision and the send a customer may unsubscribe, revoke consent, turn
    unhappy, or the policy may change; a retry's backoff may land in quiet hours. Frequency
    caps count the customer's marketing messages decided before this one (lower ids), as the
    decision did, so a message never counts itself or the ones queued behind it.
    """
    upsells = [
        m.customer_id
        for m in messages
        if m.customer_id is not None and m.category in policy.upsell_categories
    ]
    health: dict[int, HealthFacts] = {}
    if upsells and policy.upsell_requires_happy:
        try:
            health = health_facts(db, workspace_id, upsells, policy.stable_days, at)
        except Exception:  # never stop a delivery pass: the upsells are blocked, never sent blind
            log.exception("health unavailable at delivery", extra={"workspace_id": workspace_id})
            health = {customer: HealthFacts(None, False) for customer in upsells}
    ids = [m.customer_id for m in messages if m.customer_id is not None]
    with db.session() as session:
        profiles = repo.customer_profiles(session, workspace_id, ids)
        url = (repo.get_config(session, workspace_id, "channel", "webhook") or {}).get("url")
        uncapped = policy.model_copy(update={"caps": []})  # counted below, per message
        facts = repo.load_facts(session, workspace_id, channel, profiles, ids, uncapped, at, url)
        earlier = _earlier_sends(session, workspace_id, channel, messages, policy, at)
    verdicts: dict[int, Decision] = {}
    for m in messages:
        fact = facts.get(m.customer_id) if m.customer_id is not None else None
        if fact is None:
            continue
        fact.address = m.address
        fact.recent_sends = earlier.get(m.id, [])
        if m.customer_id in health:
            fact.health_state = health[m.customer_id].state
            fact.health_stable = health[m.customer_id].stable
        verdict = evaluate(m, fact, policy, at)
        if verdict.status != "pending":
            verdicts[m.id] = verdict
    return verdicts


def _earlier_sends(
    session: Session,
    workspace_id: int,
    channel: str,
    messages: list[Claimed],
    policy: Policy,
    at: datetime,
) -> dict[int, list[datetime]]:
    """For each message, when its customer's earlier marketing messages were decided."""
    window = max((c.window_hours for c in policy.caps if c.channel == channel), default=0.0)
    customers = sorted({m.customer_id for m in messages if m.customer_id is not None})
    if not window or not customers:
        return {}
    m = EngageMessage
    rows = session.execute(
        select(m.id, m.customer_id, m.created_at).where(
            m.workspace_id == workspace_id,
            m.channel == channel,
            m.purpose == "marketing",
            m.status.in_(("pending", "held", "sending", "sent")),
            m.customer_id.in_(customers),
            m.created_at > at - timedelta(hours=window),
        )
    ).all()
    by_customer: dict[int, list[tuple[int, datetime]]] = {}
    for row in rows:
        by_customer.setdefault(row.customer_id, []).append((row.id, row.created_at))
    return {
        message.id: [
            created for other, created in by_customer.get(message.customer_id, [])
            if other < message.id
        ]
        for message in messages
        if message.customer_id is not None
    }  # fmt: skip


class SentRecorder:
    """Marks messages ``sent`` the moment their server accepted them, in group commits.

    ``record`` returns only once the mark is committed, and the caller sends nothing on that
    connection before: the guarantee against duplicates after a crash rests on this. Lanes
    arriving while a commit runs are committed together by the next one to arrive (a leader,
    no extra thread), so four SMTP connections cost about one commit per round, not four.
    Only a row still in ``sending`` is changed: a message that another worker has meanwhile
    recorded is left alone.
    """

    def __init__(self, commit: Callable[[Executable, dict[str, Any]], None], at: datetime) -> None:
        self._commit = commit  # ``Database.quick_commits``: survives a kill, not a power cut
        self._at = at
        self._cond = threading.Condition()
        self._pending: list[int] = []
        self._committing = False
        self._done: set[int] = set()
        self._failed: dict[int, BaseException] = {}

    def record(self, message_id: int) -> None:
        with self._cond:
            self._pending.append(message_id)
            while True:
                if message_id in self._done:
                    return
                if message_id in self._failed:
                    raise self._failed.pop(message_id)
                if not self._committing:
                    self._committing = True
                    batch, self._pending = self._pending, []
                    break
                self._cond.wait()
        try:
            self._commit(_MARK_SENT, {"ids": batch, "at": self._at})
        except BaseException as exc:
            with self._cond:
                self._failed.update(dict.fromkeys(batch, exc))
                self._committing = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._done.update(batch)
            self._committing = False
            self._cond.notify_all()


def _deliver_group(
    provider: Provider | None,
    messages: list[Claimed],
    client: Callable[[], httpx.Client],
    outcomes: dict[int, str | None],
    permanent: set[int],
    record: Callable[[int], None],
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
            sent_lanes = pool.map(lambda lane: _send_email(provider, lane, record), lanes)
            for found, failed in sent_lanes:
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
        except DeliveryError as exc:
            outcomes[m.id] = str(exc)
            if exc.permanent:
                permanent.add(m.id)
        else:
            record(m.id)
            outcomes[m.id] = None


def _send_email(
    provider: EmailProvider, messages: list[Claimed], record: Callable[[int], None]
) -> tuple[dict[int, str | None], set[int]]:
    """Send over one SMTP connection: (id -> None or the error, the permanent failures)."""
    outcomes: dict[int, str | None] = {}
    permanent: set[int] = set()
    smtp = SmtpSession(provider)
    try:
        for m in messages:
            try:
                smtp.send(m)
            except DeliveryError as exc:
                outcomes[m.id] = str(exc)
                if exc.permanent:
                    permanent.add(m.id)
            else:
                record(m.id)
                outcomes[m.id] = None
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
    held: dict[int, Decision],
    at: datetime,
    report: DeliveryReport,
) -> None:
    # The sent ones were recorded as they were accepted (``SentRecorder``).
    report.sent += sum(1 for m in messages if m.id in outcomes and outcomes[m.id] is None)
    with db.transaction() as session:
        for m in messages:
            if m.id in revoked:
                values: dict[str, Any] = {"status": "blocked", "reason": revoked[m.id]}
                report.blocked += 1
            elif m.id in held:  # not an attempt: wait for the window to open
                values = {
                    "status": "held",
                    "reason": held[m.id].reason,
                    "next_attempt_at": held[m.id].send_at,
                    "attempts": m.attempts - 1,
                }
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


# How far back the sweep looks for a sent message without its event (by when it was due).
MISSED_WINDOW = timedelta(hours=6)


def log_missed_sends(db: Database, now: datetime | None = None) -> int:
    """Write the "Email Sent" (SMS, webhook) event of each message marked sent whose event was
    never written, dated when it was sent; returns how many.

    A message is marked sent the moment the server accepts it, and its event is written after
    the batch: a worker killed in between (SIGKILL, OOM, power) left a message sent with no
    trace on the customer's timeline, in the playbook report or in frequency caps that count
    events. The worker's minute sweep runs this. Events keep their message ids, so writing one
    twice stores it once.
    """
    at = now or datetime.now(UTC)
    settle = timedelta(seconds=get_settings().engage_lease_seconds)  # a live batch's own write
    m = EngageMessage
    logged = select(Event.id).where(
        Event.workspace_id == m.workspace_id,
        Event.message_id == literal(f"{eventlog.PREFIX}sent-").concat(m.idempotency_key),
    )
    columns = (m.id, m.workspace_id, m.customer_id, m.channel, m.purpose, m.category, m.address,
               m.idempotency_key, m.attempts, m.sent_at)  # fmt: skip
    with db.session() as session:
        rows = session.execute(
            select(*columns).where(
                m.status == "sent",  # with the due time: ix_engage_messages_due
                m.next_attempt_at >= at - MISSED_WINDOW,
                m.sent_at <= at - settle,
                m.customer_id.is_not(None),
                ~exists(logged),
            )
        ).all()
    if not rows:
        return 0
    missed = [
        Claimed(r.id, r.workspace_id, r.customer_id, r.channel, r.purpose, r.category,
                r.address, {}, r.idempotency_key, r.attempts)
        for r in rows
    ]  # fmt: skip
    sent_at = {r.id: r.sent_at for r in rows}  # a UTC column: aware on both databases
    _sent_events(db, missed, dict.fromkeys(sent_at), {}, at, times=sent_at)
    log.warning("sent messages without their event logged", extra={"messages": len(missed)})
    return len(missed)


def _sent_events(
    db: Database,
    claimed: list[Claimed],
    outcomes: dict[int, str | None],
    revoked: dict[int, str],
    at: datetime,
    *,
    times: dict[int, datetime] | None = None,
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
                    times[m.id] if times else at,
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
