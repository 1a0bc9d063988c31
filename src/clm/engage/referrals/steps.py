"""The steps of referral processing: attribute clicks, qualify with fraud checks, reward.

Each step works in the caller's transaction and returns the events to write afterwards, so a
pass of ``referrals.process`` commits its decisions, ledger entries and events together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage.referrals import ledger
from clm.engage.referrals.checks import customer_ids, run_checks
from clm.engage.referrals.codes import CLICKED
from clm.engage.referrals.schemas import ReferralProgram, ReferralReport
from clm.store.models import Customer, EngageReferral, Event, Identity

CONVERTED, REWARDED = "Referral Converted", "Reward Granted"


def _live(session: Session, customer_id: int) -> Customer | None:
    for _ in range(10):
        found = session.get(Customer, customer_id)
        if found is None or found.merged_into_id is None:
            return found
        customer_id = found.merged_into_id
    return None


def _referee_events(
    session: Session, workspace_id: int, customer_id: int, after: datetime
) -> list[Event]:
    ids = customer_ids(session, workspace_id, customer_id)
    identity_ids = select(Identity.id).where(
        Identity.workspace_id == workspace_id, Identity.customer_id.in_(ids)
    )
    return list(
        session.scalars(
            select(Event)
            .where(Event.workspace_id == workspace_id, Event.identity_id.in_(identity_ids))
            .order_by(Event.timestamp, Event.id)
        )
    )


def explained_check(name: str, flagged: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "flagged": flagged, "detail": detail}


def attribute(session: Session, workspace_id: int, now: datetime) -> tuple[int, int]:
    """Clicks whose visitor is now a known customer become referrals (first click wins)."""
    known = set(
        session.scalars(
            select(EngageReferral.referee_id).where(EngageReferral.workspace_id == workspace_id)
        )
    )
    clicks = session.execute(
        select(Event.message_id, Event.properties, Event.timestamp, Identity.customer_id)
        .join(Identity, Identity.id == Event.identity_id)
        .where(Event.workspace_id == workspace_id, Event.name == CLICKED)
        .order_by(Event.timestamp, Event.id)
    ).all()
    attributed = rejected = 0
    for message_id, properties, clicked_at, owner in clicks:
        referee = _live(session, owner)
        if referee is None or referee.id in known or not (referee.user_id or referee.email):
            continue  # still anonymous: wait for the signup
        if properties.get("referrer_id") is None:
            continue  # the referrer was erased: nobody to attribute to
        code, referrer_id = str(properties["code"]), int(properties["referrer_id"])
        status, checks = (
            "attributed",
            [
                explained_check(
                    "attribution",
                    False,
                    f"clicked {code} at {clicked_at:%Y-%m-%d %H:%M} UTC "
                    "from an anonymous id that later identified as this customer",
                ),
            ],
        )
        if referee.id == referrer_id:
            status = "rejected"
            checks.append(
                explained_check(
                    "self_referral",
                    True,
                    "the link was opened on the referrer's "
                    "own device: its anonymous id belongs to the referrer",
                )
            )
        else:
            earlier = [
                e
                for e in _referee_events(session, workspace_id, referee.id, clicked_at)
                if e.name == "Order Completed" and e.timestamp < clicked_at
            ]
            if earlier:
                status = "rejected"
                checks.append(
                    explained_check(
                        "existing_customer",
                        True,
                        "already a customer: purchased "
                        f"on {earlier[0].timestamp:%Y-%m-%d} before the click",
                    )
                )
        session.add(
            EngageReferral(
                workspace_id=workspace_id,
                code=code,
                referrer_id=referrer_id,
                referee_id=referee.id,
                status=status,
                checks=checks,
                attributed_message_id=message_id,
                created_at=now,
            )
        )
        known.add(referee.id)
        attributed += status == "attributed"
        rejected += status == "rejected"
    session.flush()
    return attributed, rejected


def _qualifying(
    events: list[Event], program: ReferralProgram, clicked_at: datetime
) -> tuple[Event | None, str | None]:
    """(the qualifying event, None) or (None, why it can no longer qualify) or (None, None)."""
    if program.qualifying_event == "signup":
        for e in events:
            if e.type == "identify" and e.timestamp >= clicked_at:
                return e, None
        return None, None
    purchases = [e for e in events if e.name == "Order Completed"]
    if not purchases:
        return None, None
    first = purchases[0]
    if first.timestamp < clicked_at:
        # A purchase sent in late, stamped before the click (by mistake or to collect a
        # reward): the customer did not come through the referral.
        return None, (
            f"first purchase is dated {first.timestamp:%Y-%m-%d %H:%M} UTC, before the "
            f"referral click at {clicked_at:%Y-%m-%d %H:%M} UTC"
        )
    if (first.revenue or 0.0) < program.min_amount:
        return None, (
            f"first purchase of {first.revenue or 0.0:.2f} on {first.timestamp:%Y-%m-%d} is "
            f"below the qualifying {program.min_amount:.2f}"
        )
    return first, None


def _clicked_at(session: Session, workspace_id: int, row: EngageReferral) -> datetime:
    found = session.scalar(
        select(Event.timestamp).where(
            Event.workspace_id == workspace_id, Event.message_id == row.attributed_message_id
        )
    )
    return found or row.created_at


def qualify(
    session: Session, workspace_id: int, program: ReferralProgram, now: datetime
) -> tuple[list[dict[str, Any] | None], ReferralReport]:
    report, events_out = ReferralReport(), []
    rows = session.scalars(
        select(EngageReferral).where(
            EngageReferral.workspace_id == workspace_id, EngageReferral.status == "attributed"
        )
    ).all()
    for row in rows:
        clicked_at = _clicked_at(session, workspace_id, row)
        events = _referee_events(session, workspace_id, row.referee_id, clicked_at)
        event, refused = _qualifying(events, program, clicked_at)
        if refused:
            row.status = "rejected"
            row.checks = [*row.checks, explained_check("qualifying", True, refused)]
            report.rejected += 1
            continue
        if event is None:
            continue
        what = (
            "signup"
            if program.qualifying_event == "signup"
            else (f"first purchase of {event.revenue or 0.0:.2f} ≥ {program.min_amount:.2f}")
        )
        checks = run_checks(session, workspace_id, program, row.referrer_id, row.referee_id)
        flagged = [c for c in checks if c.flagged]
        row.checks = [
            *row.checks,
            explained_check("qualifying", False, f"{what} on {event.timestamp:%Y-%m-%d %H:%M} UTC"),
            *(c.model_dump() for c in checks),
        ]
        row.qualifying_message_id, row.qualified_at = event.message_id, event.timestamp
        days = program.refund_window_days if program.qualifying_event == "first_purchase" else 0
        # From when CLM received the order, not the client's clock: an order stamped weeks ago
        # must still wait out the whole refund window before anyone is rewarded.
        row.reward_due_at = max(event.timestamp, event.received_at) + timedelta(days=days)
        row.status = "review" if flagged else "qualified"
        report.review += bool(flagged)
        report.qualified += not flagged
        profile = repo.customer_profiles(session, workspace_id, [row.referee_id])
        events_out.append(
            eventlog.track(
                profile.get(row.referee_id),
                CONVERTED,
                f"referral-converted-{row.id}",
                {
                    "referral_id": row.id,
                    "code": row.code,
                    "referrer_id": row.referrer_id,
                    "qualifying_event": program.qualifying_event,
                    "status": row.status,
                },
                event.timestamp,
            )
        )
    return events_out, report


def _refunded(session: Session, workspace_id: int, row: EngageReferral) -> str | None:
    order = session.scalar(
        select(Event.properties).where(
            Event.workspace_id == workspace_id, Event.message_id == row.qualifying_message_id
        )
    )
    order_id = (order or {}).get("order_id")
    if order_id is None:
        return None
    events = _referee_events(session, workspace_id, row.referee_id, row.created_at)
    for e in events:
        if e.name == "Order Refunded" and (e.properties or {}).get("order_id") == order_id:
            return f"order {order_id} was refunded on {e.timestamp:%Y-%m-%d}"
    return None


def reward(
    session: Session, workspace_id: int, program: ReferralProgram, now: datetime
) -> tuple[list[dict[str, Any] | None], ReferralReport]:
    report, events_out = ReferralReport(), []
    rows = session.scalars(
        select(EngageReferral)
        .where(
            EngageReferral.workspace_id == workspace_id,
            EngageReferral.status == "qualified",
            EngageReferral.reward_due_at <= now,
        )
        .order_by(EngageReferral.reward_due_at, EngageReferral.id)
    ).all()
    for row in rows:
        refunded = _refunded(session, workspace_id, row)
        if refunded:
            row.status = "rejected"
            row.checks = [*row.checks, explained_check("refund", True, refunded)]
            report.rejected += 1
            continue
        earlier = session.scalar(
            select(func.count()).where(
                EngageReferral.workspace_id == workspace_id,
                EngageReferral.referrer_id == row.referrer_id,
                EngageReferral.status == "rewarded",
            )
        )
        capped = (earlier or 0) >= program.referrer_cap
        sides = [("referee", row.referee_id, program.referee_points)]
        if not capped:
            sides.append(("referrer", row.referrer_id, program.referrer_points))
        detail = f"no refund within {program.refund_window_days} days; " + (
            f"referrer cap of {program.referrer_cap} reached: referee rewarded only"
            if capped
            else f"referrer has {earlier or 0} earlier rewards (cap {program.referrer_cap})"
        )
        profiles = repo.customer_profiles(session, workspace_id, [c for _, c, _ in sides])
        for side, customer_id, points in sides:
            if points:
                ledger.post(
                    session,
                    workspace_id,
                    customer_id,
                    points,
                    "reward",
                    f"referral-{row.id}-{side}",
                    now,
                    memo=f"referral #{row.id} ({side})",
                    program="referral",
                )
            events_out.append(
                eventlog.track(
                    profiles.get(customer_id),
                    REWARDED,
                    f"referral-reward-{row.id}-{side}",
                    {"referral_id": row.id, "side": side, "points": points, "code": row.code},
                    now,
                )
            )
        row.status, row.rewarded_at = "rewarded", now
        row.checks = [*row.checks, explained_check("reward", capped, detail)]
        report.rewarded += 1
    return events_out, report
