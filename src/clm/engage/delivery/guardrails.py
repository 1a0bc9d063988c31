"""The guardrails every send passes, in one place: a pure function of the request, the facts
about the customer, the policy and the clock, so the whole matrix is testable without I/O.

Order (the first that applies decides): no address → suppressed → consent → unhappy customer
and an upsell → frequency cap → quiet hours (held, not dropped: sent when the window opens).
Transactional messages skip the opt-in, the caps and quiet hours, never an explicit revocation;
a selling category is marketing whatever its label says. The same function runs again at
delivery (``delivery.recheck``) with the facts of that moment: a message held for quiet hours
meets the customer's health, consent and caps as they are when it goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clm.engage.schemas import (
    COMMERCIAL_CATEGORIES,
    MESSAGE_CATEGORIES,
    Decision,
    Policy,
    QuietHours,
)


class Sendable(Protocol):
    """What the guardrails read of a send: a request being decided, or a stored message."""

    @property
    def channel(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def category(self) -> str: ...


@dataclass
class CustomerFacts:
    """What the guardrails need to know of one customer, loaded in bulk by the repository."""

    customer_id: int
    address: str | None
    timezone: str | None = None
    # (channel, purpose) -> granted; missing means never asked.
    consents: dict[tuple[str, str], bool] = field(default_factory=dict)
    # reasons the address is suppressed on this channel (unsubscribed, bounced, complained)
    suppressions: list[str] = field(default_factory=list)
    recent_sends: list[datetime] = field(default_factory=list)  # marketing, this channel
    health_state: str | None = None
    health_stable: bool = False


def zone(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_until(quiet: QuietHours, tz: ZoneInfo, now: datetime) -> datetime | None:
    """When the quiet window around ``now`` ends (UTC), or None when ``now`` is not quiet.

    Works in local wall-clock time, so DST changes move the window with the customer's clock.
    """
    local = now.astimezone(tz)
    clock = local.timetz().replace(tzinfo=None)
    start, end = quiet.start, quiet.end
    if start == end:
        return None
    overnight = start > end
    inside = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return None
    day = local.date()
    if overnight and clock >= start:
        day = day + timedelta(days=1)
    wall = datetime.combine(day, end)
    # zoneinfo reads a wall time skipped by DST with the offset before the change, which lands
    # just after the gap; an ambiguous one (clocks going back) resolves to its first instant.
    return wall.replace(tzinfo=tz).astimezone(UTC)


def evaluate(request: Sendable, facts: CustomerFacts, policy: Policy, now: datetime) -> Decision:
    """The verdict on one send; every refusal names its reason."""
    if request.category not in MESSAGE_CATEGORIES:  # a row stored before categories were closed
        return Decision(status="blocked", reason=f"unknown category {request.category!r}")
    marketing = request.purpose == "marketing" or request.category in COMMERCIAL_CATEGORIES
    purpose = "marketing" if marketing else request.purpose
    if not facts.address:
        return Decision(status="blocked", reason=f"no {request.channel} address")
    hard = [r for r in facts.suppressions if r != "unsubscribed"]
    if hard or (marketing and "unsubscribed" in facts.suppressions):
        return Decision(status="blocked", reason=f"suppressed: {(hard or ['unsubscribed'])[0]}")
    consent = facts.consents.get((request.channel, purpose))
    if consent is False:
        return Decision(status="blocked", reason=f"consent revoked ({purpose})")
    if marketing and policy.marketing_requires_opt_in and consent is not True:
        return Decision(status="blocked", reason="no marketing consent on this channel")
    if policy.upsell_requires_happy and request.category in policy.upsell_categories:
        if facts.health_state is None:
            return Decision(status="blocked", reason="upsell: health unknown")
        if facts.health_state != "happy":
            return Decision(status="blocked", reason=f"upsell: health is {facts.health_state}")
        if not facts.health_stable:
            return Decision(
                status="blocked", reason=f"upsell: happy for less than {policy.stable_days} days"
            )
    if marketing:
        for cap in policy.caps:
            if cap.channel != request.channel:
                continue
            since = now - timedelta(hours=cap.window_hours)
            sent = sum(1 for at in facts.recent_sends if at > since)
            if sent >= cap.max_messages:
                return Decision(
                    status="blocked",
                    reason=f"frequency cap: {sent} {cap.channel} in {cap.window_hours:g}h",
                )
        if policy.quiet_hours is not None:
            tz = zone(facts.timezone, policy.quiet_hours.default_timezone)
            opens = quiet_until(policy.quiet_hours, tz, now)
            if opens is not None:
                return Decision(status="held", reason=f"quiet hours in {tz.key}", send_at=opens)
    return Decision(status="pending", send_at=now)
