"""Fraud checks on a referral, each with a sentence saying what it compared.

* ``email_alias`` — the two addresses are one mailbox: case, ``+tags``, and Gmail's dots and
  ``googlemail.com`` are ignored (``ada.l+promo@gmail.com`` is ``adal@gmail.com``).
* ``shared_device`` — both customers used one anonymous id or ``context.device.id``.
* ``payment_fingerprint`` — one ``payment_fingerprint`` appears in both customers' events.
* ``same_ip`` — both customers were seen from one IP address within the program's window.
* ``ring`` — the referee referred the referrer, directly or up a chain (A → B → C → A).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.engage.referrals.schemas import Check, ReferralProgram
from clm.store.models import Customer, EngageReferral, Event, Identity

_GMAIL = {"gmail.com", "googlemail.com"}


def mailbox(address: str | None) -> str | None:
    """The mailbox an address delivers to, aliases removed."""
    if not address or "@" not in address:
        return None
    local, domain = address.strip().lower().rsplit("@", 1)
    local = local.split("+", 1)[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


@dataclass
class Footprint:
    """What we know of one customer that fraud checks compare."""

    customer_id: int
    email: str | None
    anonymous_ids: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)
    ips: list[tuple[str, datetime]] = field(default_factory=list)


def customer_ids(session: Session, workspace_id: int, customer_id: int) -> list[int]:
    """The customer and every customer merged into it."""
    merged = session.scalars(
        select(Customer.id).where(
            Customer.workspace_id == workspace_id, Customer.merged_into_id == customer_id
        )
    ).all()
    return [customer_id, *merged]


def footprint(session: Session, workspace_id: int, customer_id: int) -> Footprint:
    ids = customer_ids(session, workspace_id, customer_id)
    email = session.scalar(select(Customer.email).where(Customer.id == customer_id))
    found = Footprint(customer_id, email)
    identities = session.execute(
        select(Identity.id, Identity.kind, Identity.value).where(
            Identity.workspace_id == workspace_id, Identity.customer_id.in_(ids)
        )
    ).all()
    found.anonymous_ids = {v for _, k, v in identities if k == "anonymous_id"}
    events = session.execute(
        select(Event.context, Event.properties, Event.timestamp).where(
            Event.workspace_id == workspace_id,
            Event.identity_id.in_([i for i, _, _ in identities]),
        )
    )
    for context, properties, at in events:
        context, properties = dict(context or {}), dict(properties or {})
        device = (context.get("device") or {}).get("id")
        if device:
            found.devices.add(str(device))
        if properties.get("payment_fingerprint"):
            found.fingerprints.add(str(properties["payment_fingerprint"]))
        if context.get("ip"):
            found.ips.append((str(context["ip"]), at))
    return found


def _shared(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


def _same_ip(referrer: Footprint, referee: Footprint, window: timedelta) -> tuple[str, Any] | None:
    for ip, at in referee.ips:
        for other_ip, other_at in referrer.ips:
            if ip == other_ip and abs(at - other_at) <= window:
                return ip, (other_at, at)
    return None


def _ring(session: Session, workspace_id: int, referrer_id: int, referee_id: int) -> list[int]:
    """The chain of referrers above the referrer that leads back to the referee, or []."""
    chain, current = [referrer_id], referrer_id
    for _ in range(50):
        above = session.scalar(
            select(EngageReferral.referrer_id).where(
                EngageReferral.workspace_id == workspace_id,
                EngageReferral.referee_id == current,
                EngageReferral.status != "rejected",
            )
        )
        if above is None or above in chain:
            return []
        chain.append(above)
        if above == referee_id:
            return chain
        current = above
    return []


def run_checks(
    session: Session,
    workspace_id: int,
    program: ReferralProgram,
    referrer_id: int,
    referee_id: int,
) -> list[Check]:
    referrer = footprint(session, workspace_id, referrer_id)
    referee = footprint(session, workspace_id, referee_id)
    checks: list[Check] = []
    a, b = mailbox(referrer.email), mailbox(referee.email)
    checks.append(
        Check(
            check="email_alias",
            flagged=a is not None and a == b,
            detail=f"{referrer.email} and {referee.email} are "
            + ("one mailbox " + str(a) if a is not None and a == b else "different mailboxes"),
        )
    )
    anon = referrer.anonymous_ids & referee.anonymous_ids
    devices = referrer.devices & referee.devices
    checks.append(
        Check(
            check="shared_device",
            flagged=bool(anon or devices),
            detail=f"shared anonymous ids/devices: {_shared(anon | devices)}"
            if anon or devices
            else "no anonymous id or device in common",
        )
    )
    cards = referrer.fingerprints & referee.fingerprints
    checks.append(
        Check(
            check="payment_fingerprint",
            flagged=bool(cards),
            detail=f"same payment fingerprint {_shared(cards)}"
            if cards
            else "no payment fingerprint in common",
        )
    )
    window = timedelta(hours=program.same_ip_window_hours)
    hit = _same_ip(referrer, referee, window)
    checks.append(
        Check(
            check="same_ip",
            flagged=hit is not None,
            detail=(
                f"both seen from {hit[0]} at {hit[1][0]:%Y-%m-%d %H:%M} and "
                f"{hit[1][1]:%Y-%m-%d %H:%M} UTC (window {program.same_ip_window_hours:g} h)"
            )
            if hit
            else f"no shared IP within {program.same_ip_window_hours:g} h",
        )
    )
    chain = _ring(session, workspace_id, referrer_id, referee_id)
    checks.append(
        Check(
            check="ring",
            flagged=bool(chain),
            detail="referral ring: " + " -> ".join(f"#{c}" for c in [*reversed(chain), referee_id])
            if chain
            else "the referee is not above the referrer in any referral chain",
        )
    )
    return checks
