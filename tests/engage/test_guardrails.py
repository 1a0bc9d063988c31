"""The guardrail matrix: consent, suppression, caps, quiet hours across zones and DST, upsell."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from clm.engage.delivery.guardrails import CustomerFacts, evaluate, quiet_until, zone
from clm.engage.schemas import Content, FrequencyCap, Policy, QuietHours, SendRequest

NOON_UTC = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)


def request(**changes: object) -> SendRequest:
    base: dict[str, object] = {
        "customer_id": 1,
        "channel": "email",
        "category": "welcome",
        "purpose": "marketing",
        "content": Content(subject="hi", text="hello"),
        "idempotency_key": "k1",
    }
    base.update(changes)
    return SendRequest.model_validate(base)


def facts(**changes: object) -> CustomerFacts:
    fact = CustomerFacts(customer_id=1, address="a@example.com", timezone="UTC")
    fact.consents = {("email", "marketing"): True}
    fact.health_state, fact.health_stable = "happy", True
    for key, value in changes.items():
        setattr(fact, key, value)
    return fact


POLICY = Policy(quiet_hours=QuietHours(start=time(21), end=time(8)))


@pytest.mark.parametrize(
    ("purpose", "consent", "expected"),
    [
        ("marketing", True, "pending"),
        ("marketing", None, "blocked"),  # opt-in required by default
        ("marketing", False, "blocked"),
        ("transactional", None, "pending"),  # no opt-in needed
        ("transactional", False, "blocked"),  # but an explicit revocation wins
    ],
)
def test_consent_per_channel_and_purpose(purpose: str, consent: bool | None, expected: str) -> None:
    consents = {} if consent is None else {("email", purpose): consent}
    verdict = evaluate(request(purpose=purpose), facts(consents=consents), POLICY, NOON_UTC)
    assert verdict.status == expected
    if expected == "blocked":
        assert "consent" in (verdict.reason or "")


def test_consent_is_per_channel() -> None:
    verdict = evaluate(request(channel="sms"), facts(address="+15550001"), POLICY, NOON_UTC)
    assert verdict.status == "blocked"
    assert verdict.reason == "no marketing consent on this channel"


def test_unsubscribed_blocks_marketing_only_and_bounces_block_all() -> None:
    unsub = facts(suppressions=["unsubscribed"])
    assert evaluate(request(), unsub, POLICY, NOON_UTC).reason == "suppressed: unsubscribed"
    assert evaluate(request(purpose="transactional"), unsub, POLICY, NOON_UTC).status == "pending"
    bounced = facts(suppressions=["bounced"])
    verdict = evaluate(request(purpose="transactional"), bounced, POLICY, NOON_UTC)
    assert (verdict.status, verdict.reason) == ("blocked", "suppressed: bounced")


def test_no_address_is_blocked_with_reason() -> None:
    verdict = evaluate(request(), facts(address=None), POLICY, NOON_UTC)
    assert (verdict.status, verdict.reason) == ("blocked", "no email address")


def test_frequency_cap_counts_the_window_only() -> None:
    policy = POLICY.model_copy(
        update={"caps": [FrequencyCap(channel="email", max_messages=2, window_hours=24)]}
    )
    two_recent = [NOON_UTC - timedelta(hours=1), NOON_UTC - timedelta(hours=5)]
    verdict = evaluate(request(), facts(recent_sends=two_recent), policy, NOON_UTC)
    assert verdict.status == "blocked"
    assert verdict.reason == "frequency cap: 2 email in 24h"
    old = [NOON_UTC - timedelta(hours=30), NOON_UTC - timedelta(hours=1)]
    assert evaluate(request(), facts(recent_sends=old), policy, NOON_UTC).status == "pending"
    # transactional messages are not capped
    transactional = request(purpose="transactional")
    assert evaluate(transactional, facts(recent_sends=two_recent), policy, NOON_UTC).status == (
        "pending"
    )


@pytest.mark.parametrize(
    ("tz", "now", "opens"),
    [
        # 12:00 UTC is 21:00 in Tokyo: quiet until 08:00 Tokyo = 23:00 UTC.
        ("Asia/Tokyo", NOON_UTC, datetime(2024, 6, 12, 23, 0, tzinfo=UTC)),
        # 12:00 UTC is 08:00 in New York (EDT): the window just opened.
        ("America/New_York", NOON_UTC, None),
        # 11:59 UTC is 07:59 in New York: one minute to wait.
        ("America/New_York", NOON_UTC - timedelta(minutes=1), NOON_UTC),
        # 12:00 UTC is 22:00 in Sydney (AEST, UTC+10): until 08:00 = 22:00 UTC.
        ("Australia/Sydney", NOON_UTC, datetime(2024, 6, 12, 22, 0, tzinfo=UTC)),
        ("Europe/Berlin", NOON_UTC, None),
    ],
)
def test_quiet_hours_in_the_customers_own_zone(
    tz: str, now: datetime, opens: datetime | None
) -> None:
    verdict = evaluate(request(), facts(timezone=tz), POLICY, now)
    if opens is None:
        assert verdict.status == "pending"
    else:
        assert verdict.status == "held"  # held, not dropped
        assert verdict.send_at == opens
        assert verdict.reason == f"quiet hours in {tz}"


def test_quiet_hours_across_dst_changes() -> None:
    quiet = QuietHours(start=time(21), end=time(8))
    ny = zone("America/New_York", "UTC")
    # The night of the spring-forward change (2024-03-10): 08:00 EDT is 12:00 UTC, not 13:00.
    opens = quiet_until(quiet, ny, datetime(2024, 3, 10, 4, 0, tzinfo=UTC))  # 23:00 EST
    assert opens == datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    # The fall-back night (2024-11-03): 08:00 EST is 13:00 UTC.
    opens = quiet_until(quiet, ny, datetime(2024, 11, 3, 3, 0, tzinfo=UTC))  # 23:00 EDT
    assert opens == datetime(2024, 11, 3, 13, 0, tzinfo=UTC)
    # A window ending inside the spring-forward gap (02:30 does not exist): sent after the gap.
    gap = QuietHours(start=time(1), end=time(2, 30))
    opens = quiet_until(gap, ny, datetime(2024, 3, 10, 6, 15, tzinfo=UTC))  # 01:15 EST
    assert opens is not None
    assert opens.astimezone(ny).hour == 3
    assert opens > datetime(2024, 3, 10, 6, 15, tzinfo=UTC)


def test_quiet_hours_do_not_hold_transactional_messages() -> None:
    verdict = evaluate(
        request(purpose="transactional"), facts(timezone="Asia/Tokyo"), POLICY, NOON_UTC
    )
    assert verdict.status == "pending"


def test_unknown_time_zone_falls_back_to_the_policy_default() -> None:
    policy = POLICY.model_copy(
        update={"quiet_hours": QuietHours(start=time(21), end=time(8), default_timezone="UTC")}
    )
    late = datetime(2024, 6, 12, 22, 0, tzinfo=UTC)
    assert evaluate(request(), facts(timezone="Mars/Olympus"), policy, late).status == "held"


@pytest.mark.parametrize(
    ("state", "stable", "category", "expected", "reason"),
    [
        ("happy", True, "upsell", "pending", None),
        ("happy", False, "upsell", "blocked", "upsell: happy for less than 14 days"),
        ("at_risk", True, "upsell", "blocked", "upsell: health is at_risk"),
        ("unhappy", True, "cross_sell", "blocked", "upsell: health is unhappy"),
        (None, False, "upsell", "blocked", "upsell: health unknown"),
        ("unhappy", False, "winback", "pending", None),  # not an upsell: allowed
    ],
)
def test_no_upsell_to_a_customer_not_happy_and_stable(
    state: str | None, stable: bool, category: str, expected: str, reason: str | None
) -> None:
    verdict = evaluate(
        request(category=category),
        facts(health_state=state, health_stable=stable),
        POLICY,
        NOON_UTC,
    )
    assert (verdict.status, verdict.reason) == (expected, reason)


def test_upsell_policy_can_be_switched_off() -> None:
    policy = POLICY.model_copy(update={"upsell_requires_happy": False})
    verdict = evaluate(request(category="upsell"), facts(health_state="unhappy"), policy, NOON_UTC)
    assert verdict.status == "pending"
