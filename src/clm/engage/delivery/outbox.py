"""The transactional outbox: decide (guardrails) and record in the caller's transaction,
deliver later, at least once, under the message's idempotency key.

``decide_in`` writes one row per request — ``pending``, ``held`` (quiet hours: due when the
window opens) or ``blocked`` (with the reason) — inside the caller's transaction, so a message
exists if and only if the decision to send it was committed. ``deliver_due`` claims due rows
under a lease, sends them, and records the outcome; a worker killed mid-delivery leaves rows
whose lease expires and which are sent again with the same key. Failures back off
exponentially and dead-letter after ``Policy.max_attempts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from clm.config import get_settings
from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage._bulk import insert_rows
from clm.engage.delivery.guardrails import CustomerFacts, evaluate
from clm.engage.delivery.health import HealthFacts, health_facts
from clm.engage.delivery.templates import render, template_context
from clm.engage.delivery.tokens import sign_compact
from clm.engage.referrals import advocacy
from clm.engage.schemas import (
    Policy,
    SendRequest,
)
from clm.store.engine import Database
from clm.store.models import EngageMessage, table_of

log = logging.getLogger("clm.engage.outbox")
SENT_EVENT = {"email": "Email Sent", "sms": "SMS Sent", "webhook": "Webhook Delivered"}
BLOCKED_EVENT = "Message Blocked"
UNSUBSCRIBE_MAX_AGE = 400 * 86_400


@dataclass
class Decided:
    """A request and what the guardrails made of it (for the caller's own records): ``dead``
    with the error as ``reason`` when its template failed for this customer."""

    request: SendRequest
    status: str
    reason: str | None


def unsubscribe_url(workspace_id: int, customer_id: int, channel: str, address: str) -> str:
    token = sign_compact("unsubscribe", workspace_id, customer_id, channel, data={"a": address})
    return f"{get_settings().public_url.rstrip('/')}/public/unsubscribe?token={token}"


def decide_in(
    session: Session,
    workspace_id: int,
    requests: Sequence[SendRequest],
    now: datetime,
    *,
    health: dict[int, HealthFacts] | None = None,
    profiles: dict[int, dict[str, Any]] | None = None,
) -> list[Decided]:
    """Apply the guardrails and write the outbox rows inside the caller's transaction."""
    if not requests:
        return []
    requests = advocacy.with_links(session, workspace_id, requests, now)
    policy = repo.get_policy(session, workspace_id)
    if profiles is None:
        profiles = repo.customer_profiles(session, workspace_id, [r.customer_id for r in requests])
    by_channel: dict[str, list[SendRequest]] = {}
    for request in requests:
        by_channel.setdefault(request.channel, []).append(request)
    decided: list[Decided] = []
    rows: list[dict[str, Any]] = []
    for channel, group in by_channel.items():
        webhook_url = None
        if channel == "webhook":
            hook = repo.get_config(session, workspace_id, "channel", "webhook") or {}
            webhook_url = hook.get("url")
        facts = repo.load_facts(
            session,
            workspace_id,
            channel,
            profiles,
            [r.customer_id for r in group],
            policy,
            now,
            webhook_url,
        )
        for request in group:
            fact = facts[request.customer_id]
            if health and request.customer_id in health:
                fact.health_state = health[request.customer_id].state
                fact.health_stable = health[request.customer_id].stable
            verdict = evaluate(request, fact, policy, now)
            status: str = verdict.status
            reason, error = verdict.reason, None
            payload: dict[str, Any] = {}
            if verdict.status != "blocked":
                try:
                    payload = _payload(workspace_id, request, fact, profiles, policy)
                except Exception as exc:  # one customer's data must not sink everyone's batch
                    status, reason = "dead", None
                    error = f"template error: {type(exc).__name__}: {exc}"[:500]
                    log.error(
                        "message could not be rendered",
                        extra={"workspace_id": workspace_id, "customer_id": request.customer_id,
                               "source": request.source, "error": type(exc).__name__},
                    )  # fmt: skip
                else:
                    if request.purpose == "marketing":
                        fact.recent_sends.append(now)  # later requests in this batch count it
            rows.append(
                {
                    "workspace_id": workspace_id,
                    "customer_id": request.customer_id,
                    "channel": channel,
                    "category": request.category,
                    "purpose": request.purpose,
                    "address": fact.address,
                    "payload": payload,
                    "idempotency_key": request.idempotency_key,
                    "status": status,
                    "reason": reason,
                    "source": request.source,
                    "attempts": 0,
                    "next_attempt_at": verdict.send_at,
                    "lease_until": None,
                    "last_error": error,
                    "created_at": now,
                    "sent_at": None,
                }
            )
            decided.append(Decided(request, status, reason or error))
    _insert_new(session, rows)
    return decided


def _payload(
    workspace_id: int,
    request: SendRequest,
    fact: CustomerFacts,
    profiles: dict[int, dict[str, Any]],
    policy: Policy,
) -> dict[str, Any]:
    links: dict[str, str] = dict(request.context.get("links", {}))
    unsubscribe = None
    if request.purpose == "marketing" and request.channel == "email" and fact.address:
        unsubscribe = unsubscribe_url(workspace_id, request.customer_id, "email", fact.address)
        links["unsubscribe"] = unsubscribe
    context = template_context(
        request.customer_id,
        profiles.get(request.customer_id),
        {**request.context, "links": links},
    )
    payload = render(request.channel, request.content, context)
    if unsubscribe:
        payload["unsubscribe_url"] = unsubscribe
        if payload.get("text") and unsubscribe not in payload["text"]:
            payload["text"] += f"\n\n--\nUnsubscribe: {unsubscribe}\n"
    return payload


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert the decided messages; an idempotency key already in the outbox is skipped."""
    insert_rows(
        session,
        table_of(EngageMessage),
        rows,
        skip_conflicts_on=("workspace_id", "idempotency_key"),
    )


def blocked_events(
    db: Database, workspace_id: int, decided: Sequence[Decided], at: datetime
) -> None:
    """After commit: each blocked send as a ``Message Blocked`` event, with its reason."""
    blocked = [d for d in decided if d.status == "blocked"]
    if not blocked:
        return
    with db.session() as session:
        profiles = repo.customer_profiles(
            session, workspace_id, [d.request.customer_id for d in blocked]
        )
    eventlog.write(
        db,
        workspace_id,
        [
            eventlog.track(
                profiles.get(d.request.customer_id),
                BLOCKED_EVENT,
                f"blocked-{d.request.idempotency_key}",
                {
                    "channel": d.request.channel,
                    "category": d.request.category,
                    "purpose": d.request.purpose,
                    "reason": d.reason,
                    "source": d.request.source,
                },
                at,
            )
            for d in blocked
        ],
    )


def send(
    db: Database, workspace_id: int, requests: Sequence[SendRequest], *, now: datetime | None = None
) -> list[Decided]:
    """Decide and record sends in their own transaction (the Python API's entry point)."""
    at = now or datetime.now(UTC)
    health = health_for(db, workspace_id, requests, at)
    with db.transaction() as session:
        decided = decide_in(session, workspace_id, requests, at, health=health)
    blocked_events(db, workspace_id, decided, at)
    notify_worker()
    return decided


def health_for(
    db: Database, workspace_id: int, requests: Sequence[SendRequest], at: datetime
) -> dict[int, HealthFacts]:
    """Health of the customers an upsell is meant for (computed before the write transaction)."""
    with db.session() as session:
        policy = repo.get_policy(session, workspace_id)
    wanted = [r.customer_id for r in requests if r.category in policy.upsell_categories]
    if not wanted or not policy.upsell_requires_happy:
        return {}
    return health_facts(db, workspace_id, wanted, policy.stable_days, at)


_notifier: list[Callable[[], None]] = []


def set_notifier(callback: Callable[[], None] | None) -> None:
    """What to call after a commit that created due messages (the queue's enqueue)."""
    _notifier.clear()
    if callback is not None:
        _notifier.append(callback)


def notify_worker() -> None:
    for callback in _notifier:
        callback()


__all__ = ["Decided", "decide_in", "send"]
