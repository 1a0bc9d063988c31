"""Queries of the engagement tables: configuration, consent, suppressions, guardrail facts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError as PydanticError
from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.engage.delivery.guardrails import CustomerFacts
from clm.engage.delivery.outbound import OutboundRefused, check_target
from clm.engage.schemas import (
    Channel,
    EmailProvider,
    MessagePublic,
    Policy,
    Purpose,
    SmsProvider,
    WebhookProvider,
)
from clm.errors import FieldError, NotFound, ValidationError
from clm.store.models import (
    ConsentRecord,
    Customer,
    EngageConfig,
    EngageConsent,
    EngageMessage,
    EngageSuppression,
    EngageTask,
    Identity,
)

_PROVIDERS: dict[str, type[EmailProvider | SmsProvider | WebhookProvider]] = {
    "email": EmailProvider,
    "sms": SmsProvider,
    "webhook": WebhookProvider,
}
CHUNK = 500
_COUNTED = ("pending", "held", "sending", "sent")


def now() -> datetime:
    return datetime.now(UTC)


def chunks(values: Sequence[int], size: int = CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def get_config(session: Session, workspace_id: int, kind: str, name: str) -> dict[str, Any] | None:
    row = session.scalar(
        select(EngageConfig.config).where(
            EngageConfig.workspace_id == workspace_id,
            EngageConfig.kind == kind,
            EngageConfig.name == name,
        )
    )
    return dict(row) if row is not None else None


def put_config(
    session: Session, workspace_id: int, kind: str, name: str, config: dict[str, Any]
) -> None:
    row = session.scalar(
        select(EngageConfig).where(
            EngageConfig.workspace_id == workspace_id,
            EngageConfig.kind == kind,
            EngageConfig.name == name,
        )
    )
    if row is None:
        session.add(
            EngageConfig(
                workspace_id=workspace_id, kind=kind, name=name, config=config, updated_at=now()
            )
        )
    else:
        row.config = config
        row.updated_at = now()


def secret_dump(model: EmailProvider | SmsProvider | WebhookProvider | Policy) -> dict[str, Any]:
    """A provider as stored: secrets in clear, only ever inside the database."""
    data = model.model_dump(mode="json")
    for key, value in model:
        if hasattr(value, "get_secret_value"):
            data[key] = value.get_secret_value()
    return data


def set_provider(
    session: Session, workspace_id: int, provider: EmailProvider | SmsProvider | WebhookProvider
) -> None:
    channel = {EmailProvider: "email", SmsProvider: "sms", WebhookProvider: "webhook"}[
        type(provider)
    ]
    _check_outbound(provider)
    put_config(session, workspace_id, "channel", channel, secret_dump(provider))


def _check_outbound(provider: EmailProvider | SmsProvider | WebhookProvider) -> None:
    """Refuse a target a tenant may not point CLM at (checked again at each send)."""
    field, url = (
        ("url", provider.url)
        if isinstance(provider, WebhookProvider)
        else ("base_url", provider.base_url)
        if isinstance(provider, SmsProvider)
        else ("", "")
    )
    if not field:
        return
    try:
        check_target(url)
    except OutboundRefused as exc:
        raise ValidationError(
            "The target URL is not allowed", errors=[FieldError((field,), str(exc))]
        ) from exc


def get_provider(
    session: Session, workspace_id: int, channel: str
) -> EmailProvider | SmsProvider | WebhookProvider:
    data = get_config(session, workspace_id, "channel", channel)
    if data is None:
        raise NotFound(f"No {channel} provider configured for this workspace")
    return _PROVIDERS[channel].model_validate(data)


def patch_provider(
    session: Session, workspace_id: int, channel: str, changes: dict[str, Any]
) -> EmailProvider | SmsProvider | WebhookProvider:
    """The channel's stored provider with ``changes`` applied, checked whole: a field left out
    keeps its stored value, secrets included (a form never holds them: they are shown only
    as "set"), so editing one field cannot wipe a password. Not stored: ``set_provider``
    does. Errors name the body's fields (``["body", "port"]``)."""
    stored = get_config(session, workspace_id, "channel", channel) or {}
    try:
        return _PROVIDERS[channel].model_validate({**stored, **changes})
    except PydanticError as exc:
        problems = [
            FieldError(("body", *(p if isinstance(p, int) else str(p) for p in e["loc"])), e["msg"])
            for e in exc.errors()
        ]
        raise ValidationError(f"Invalid {channel} channel", problems) from None


def get_policy(session: Session, workspace_id: int) -> Policy:
    data = get_config(session, workspace_id, "policy", "default")
    return Policy.model_validate(data) if data is not None else Policy()


def set_policy(session: Session, workspace_id: int, policy: Policy) -> None:
    put_config(session, workspace_id, "policy", "default", policy.model_dump(mode="json"))


def set_consent(
    session: Session,
    workspace_id: int,
    customer_id: int,
    channel: Channel,
    purpose: Purpose,
    granted: bool,
    source: str = "api",
    text: str = "",
) -> None:
    """Record a consent decision: the latest per channel and purpose (what guardrails read),
    and one more entry in the history (when, from where, the words agreed to)."""
    session.add(
        ConsentRecord(
            workspace_id=workspace_id,
            customer_id=customer_id,
            channel=channel,
            purpose=purpose,
            granted=granted,
            source=source,
            text=text,
            recorded_at=now(),
        )
    )
    row = session.scalar(
        select(EngageConsent).where(
            EngageConsent.workspace_id == workspace_id,
            EngageConsent.customer_id == customer_id,
            EngageConsent.channel == channel,
            EngageConsent.purpose == purpose,
        )
    )
    if row is None:
        session.add(
            EngageConsent(
                workspace_id=workspace_id,
                customer_id=customer_id,
                channel=channel,
                purpose=purpose,
                granted=granted,
                source=source,
                updated_at=now(),
            )
        )
    else:
        row.granted, row.source, row.updated_at = granted, source, now()


def suppress(session: Session, workspace_id: int, channel: str, address: str, reason: str) -> None:
    address = normalise_address(channel, address)
    exists = session.scalar(
        select(EngageSuppression.id).where(
            EngageSuppression.workspace_id == workspace_id,
            EngageSuppression.channel == channel,
            EngageSuppression.address == address,
        )
    )
    if exists is None:
        session.add(
            EngageSuppression(
                workspace_id=workspace_id,
                channel=channel,
                address=address,
                reason=reason,
                created_at=now(),
            )
        )


def normalise_address(channel: str, address: str) -> str:
    return address.strip().lower() if channel == "email" else address.strip()


def customer_profiles(
    session: Session, workspace_id: int, customer_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """id → {email, phone, timezone, traits, user_id, anonymous_id} for live customers."""
    found: dict[int, dict[str, Any]] = {}
    for part in chunks(sorted(set(customer_ids))):
        rows = session.execute(
            select(Customer.id, Customer.email, Customer.traits, Customer.user_id).where(
                Customer.workspace_id == workspace_id, Customer.id.in_(part)
            )
        )
        for row in rows:
            traits = dict(row.traits or {})
            found[row.id] = {
                "email": row.email or traits.get("email"),
                "phone": traits.get("phone"),
                "timezone": traits.get("timezone"),
                "traits": traits,
                "user_id": row.user_id,
                "anonymous_id": None,
            }
        anonymous = session.execute(
            select(Identity.customer_id, Identity.value).where(
                Identity.workspace_id == workspace_id,
                Identity.customer_id.in_(part),
                Identity.kind == "anonymous_id",
            )
        )
        for customer_id, value in anonymous:
            if customer_id in found and found[customer_id]["anonymous_id"] is None:
                found[customer_id]["anonymous_id"] = value
    return found


def address_for(
    channel: str, profile: dict[str, Any] | None, webhook_url: str | None
) -> str | None:
    if channel == "webhook":
        return webhook_url
    if profile is None:
        return None
    value = profile["email"] if channel == "email" else profile["phone"]
    return normalise_address(channel, str(value)) if value else None


def load_facts(
    session: Session,
    workspace_id: int,
    channel: str,
    profiles: dict[int, dict[str, Any]],
    customer_ids: Sequence[int],
    policy: Policy,
    at: datetime,
    webhook_url: str | None = None,
) -> dict[int, CustomerFacts]:
    """Guardrail facts for many customers of one channel, in a handful of queries."""
    ids = sorted(set(customer_ids))
    facts = {
        cid: CustomerFacts(
            customer_id=cid,
            address=address_for(channel, profiles.get(cid), webhook_url),
            timezone=(profiles.get(cid) or {}).get("timezone"),
        )
        for cid in ids
    }
    window = max((c.window_hours for c in policy.caps if c.channel == channel), default=0.0)
    for part in chunks(ids):
        for consent in session.execute(
            select(EngageConsent.customer_id, EngageConsent.purpose, EngageConsent.granted).where(
                EngageConsent.workspace_id == workspace_id,
                EngageConsent.channel == channel,
                EngageConsent.customer_id.in_(part),
            )
        ):
            facts[consent.customer_id].consents[(channel, consent.purpose)] = consent.granted
        if window:
            for sent in session.execute(
                select(EngageMessage.customer_id, EngageMessage.created_at).where(
                    EngageMessage.workspace_id == workspace_id,
                    EngageMessage.customer_id.in_(part),
                    EngageMessage.channel == channel,
                    EngageMessage.purpose == "marketing",
                    EngageMessage.status.in_(_COUNTED),
                    EngageMessage.created_at > at - timedelta(hours=window),
                )
            ):
                if sent.customer_id is not None:
                    facts[sent.customer_id].recent_sends.append(sent.created_at)
    addresses = {f.address: f for f in facts.values() if f.address}
    keys = sorted(addresses)
    for start in range(0, len(keys), CHUNK):
        for hit in session.execute(
            select(EngageSuppression.address, EngageSuppression.reason).where(
                EngageSuppression.workspace_id == workspace_id,
                EngageSuppression.channel == channel,
                EngageSuppression.address.in_(keys[start : start + CHUNK]),
            )
        ):
            addresses[hit.address].suppressions.append(hit.reason)
    if channel == "webhook":  # one address for everyone: only the customer's consent counts
        for f in facts.values():
            f.suppressions = []
    return facts


def list_messages(
    session: Session, workspace_id: int, *, status: str | None = None, limit: int = 100
) -> list[MessagePublic]:
    """The workspace's messages, newest first, optionally only those in one status."""
    query = select(EngageMessage).where(EngageMessage.workspace_id == workspace_id)
    if status:
        query = query.where(EngageMessage.status == status)
    rows = session.scalars(query.order_by(EngageMessage.id.desc()).limit(limit))
    return [MessagePublic.model_validate(row) for row in rows]


def list_tasks(
    session: Session,
    workspace_id: int,
    *,
    status: str = "open",
    owner: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The follow-up tasks for staff (e.g. a detractor's survey answer), oldest first;
    ``owner=""`` is the unassigned ones."""
    query = select(EngageTask).where(
        EngageTask.workspace_id == workspace_id, EngageTask.status == status
    )
    if owner == "":
        query = query.where(EngageTask.owner.is_(None) | (EngageTask.owner == ""))
    elif owner is not None:
        query = query.where(EngageTask.owner == owner)
    rows = session.scalars(query.order_by(EngageTask.id).limit(limit))
    return [_task(t) for t in rows]


def _task(t: EngageTask) -> dict[str, Any]:
    return {
        "id": t.id,
        "customer_id": t.customer_id,
        "kind": t.kind,
        "title": t.title,
        "owner": t.owner,
        "detail": t.detail,
        "status": t.status,
        "created_at": t.created_at,
        "closed_at": t.closed_at,
    }


def update_task(
    session: Session,
    workspace_id: int,
    task_id: int,
    *,
    owner: str | None = None,
    status: str | None = None,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Assign a task (``owner``, "" to unassign) or close/reopen it (``status`` "done" or
    "open"); (before, after), for the audit log."""
    task = session.get(EngageTask, task_id)
    if task is None or task.workspace_id != workspace_id:
        raise NotFound(f"No task {task_id}")
    before = _task(task)
    if owner is not None:
        task.owner = owner or None
    if status is not None and status != task.status:
        task.status = status
        task.closed_at = now if status == "done" else None
    session.flush()
    return before, _task(task)
