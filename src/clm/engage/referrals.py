"""Referral programs: codes and links, attribution through identity resolution, fraud checks,
double-sided rewards after the refund window, every decision explained.

The way a referral travels::

    /public/r/<code>  ──►  "Referral Link Clicked" (anonymous id A, code)   [attributed]
    identify(user, A) ──►  A now names a known customer: the referee
    qualifying event  ──►  signup, or a first purchase ≥ min_amount          [qualified|review]
    refund window     ──►  no refund of that order                           [rewarded]

``process`` is safe to run any number of times: a referee has at most one referral, ledger
transactions and events carry deterministic ids.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clm.engage import eventlog, ledger
from clm.engage import repository as repo
from clm.engage.journey_steps import _stages
from clm.engage.referral_checks import customer_ids, run_checks
from clm.engage.referral_schemas import (
    ReferralCodePublic,
    ReferralProgram,
    ReferralPublic,
    ReferralReport,
)
from clm.engage.settings import get_engage_settings
from clm.errors import Conflict, NotFound
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    EngageLedgerEntry,
    EngageReferral,
    EngageReferralCode,
    Event,
    Identity,
)

CLICKED, CONVERTED, REWARDED = "Referral Link Clicked", "Referral Converted", "Reward Granted"
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: codes are read aloud


def set_program(db: Database, workspace_id: int, program: ReferralProgram) -> ReferralProgram:
    with db.transaction() as session:
        repo.put_config(session, workspace_id, "program", "referral", program.model_dump())
    return program


def get_program(session: Session, workspace_id: int) -> ReferralProgram:
    found = repo.get_config(session, workspace_id, "program", "referral")
    if found is None:
        raise NotFound("No referral program in this workspace", code="no_referral_program")
    return ReferralProgram.model_validate(found)


def link(code: str) -> str:
    return f"{get_engage_settings().public_url.rstrip('/')}/public/r/{code}"


def _new_code(session: Session, taken: set[str]) -> str:
    # Unique across workspaces, so that /public/r/<code> needs no workspace.
    while True:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        if (
            code not in taken
            and session.scalar(select(EngageReferralCode.id).where(EngageReferralCode.code == code))
            is None
        ):
            taken.add(code)
            return code


def codes_for(session: Session, workspace_id: int, ids: list[int], now: datetime) -> dict[int, str]:
    """Each customer's code, issued on first need, in the caller's transaction."""
    found: dict[int, str] = {}
    for part in repo.chunks(sorted(set(ids))):
        rows = session.execute(
            select(EngageReferralCode.customer_id, EngageReferralCode.code).where(
                EngageReferralCode.workspace_id == workspace_id,
                EngageReferralCode.customer_id.in_(part),
            )
        )
        found.update({int(c): str(code) for c, code in rows})
    taken: set[str] = set()
    for customer_id in sorted(set(ids) - set(found)):
        code = _new_code(session, taken)
        session.add(
            EngageReferralCode(
                workspace_id=workspace_id, customer_id=customer_id, code=code, created_at=now
            )
        )
        found[customer_id] = code
    session.flush()
    return found


def issue_codes(
    db: Database, workspace_id: int, now: datetime, stages: list[str] | None = None
) -> list[ReferralCodePublic]:
    """A code and link for every live customer in the stages (the program's by default)."""
    with db.transaction() as session:
        wanted = stages if stages is not None else get_program(session, workspace_id).stages
        ids = [
            int(c)
            for c in session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)
                )
            )
        ]
        if wanted:
            stage_of = _stages(db, workspace_id, session, ids, now)
            ids = [c for c in ids if stage_of.get(c) in wanted]
        codes = codes_for(session, workspace_id, ids, now)
    return [ReferralCodePublic(customer_id=c, code=v, link=link(v)) for c, v in codes.items()]


@dataclass(frozen=True)
class Landing:
    workspace_id: int
    anonymous_id: str
    redirect_url: str


def record_click(
    db: Database,
    code: str,
    now: datetime,
    *,
    anonymous_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Landing:
    """A visitor followed a referral link: record who (by anonymous id), where to send them."""
    with db.session() as session:
        row = session.execute(
            select(EngageReferralCode.workspace_id, EngageReferralCode.customer_id).where(
                EngageReferralCode.code == code.upper()
            )
        ).first()
        if row is None:
            raise NotFound("This referral link is not valid", code="referral_code_unknown")
        program = get_program(session, row.workspace_id)
    anonymous_id = anonymous_id or str(uuid.uuid4())
    context: dict[str, Any] = {}
    if ip:
        context["ip"] = ip
    if user_agent:
        context["userAgent"] = user_agent[:512]
    message = eventlog.track(
        {"anonymous_id": anonymous_id},
        CLICKED,
        f"referral-click-{uuid.uuid4().hex}",
        {"code": code.upper(), "referrer_id": row.customer_id},
        now,
    )
    assert message is not None
    message["context"].update(context)
    eventlog.write(db, row.workspace_id, [message])
    query = urlencode({"ref": code.upper(), "anonymous_id": anonymous_id})
    separator = "&" if "?" in program.landing_url else "?"
    return Landing(row.workspace_id, anonymous_id, f"{program.landing_url}{separator}{query}")


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


def _check(name: str, flagged: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "flagged": flagged, "detail": detail}


def _attribute(session: Session, workspace_id: int, now: datetime) -> tuple[int, int]:
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
        code, referrer_id = str(properties["code"]), int(properties["referrer_id"])
        status, checks = (
            "attributed",
            [
                _check(
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
                _check(
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
                    _check(
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


def _qualify(
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
            row.status, row.checks = "rejected", [*row.checks, _check("qualifying", True, refused)]
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
            _check("qualifying", False, f"{what} on {event.timestamp:%Y-%m-%d %H:%M} UTC"),
            *(c.model_dump() for c in checks),
        ]
        row.qualifying_message_id, row.qualified_at = event.message_id, event.timestamp
        days = program.refund_window_days if program.qualifying_event == "first_purchase" else 0
        row.reward_due_at = event.timestamp + timedelta(days=days)
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


def _reward(
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
            row.status, row.checks = "rejected", [*row.checks, _check("refund", True, refunded)]
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
        row.checks = [*row.checks, _check("reward", capped, detail)]
        report.rewarded += 1
    return events_out, report


def process(db: Database, workspace_id: int, now: datetime) -> ReferralReport:
    """Attribute new referrals, qualify them (with fraud checks), reward the due ones."""
    with db.transaction() as session:
        program = get_program(session, workspace_id)
        attributed, rejected = _attribute(session, workspace_id, now)
        converted, qualified = _qualify(session, workspace_id, program, now)
        rewarded, paid = _reward(session, workspace_id, program, now)
    eventlog.write(db, workspace_id, [*converted, *rewarded])
    return ReferralReport(
        attributed=attributed,
        qualified=qualified.qualified,
        review=qualified.review,
        rewarded=paid.rewarded,
        rejected=rejected + qualified.rejected + paid.rejected,
    )


def review(
    db: Database, workspace_id: int, referral_id: int, approve: bool, note: str = ""
) -> ReferralPublic:
    """A person's decision on a flagged referral: approved ones wait out the refund window."""
    with db.transaction() as session:
        row = session.get(EngageReferral, referral_id)
        if row is None or row.workspace_id != workspace_id:
            raise NotFound(f"No referral {referral_id}")
        if row.status != "review":
            raise Conflict(f"Referral {referral_id} is {row.status}, not waiting for review")
        verdict = "approved" if approve else "rejected"
        row.status = "qualified" if approve else "rejected"
        row.checks = [
            *row.checks,
            _check(
                "review", not approve, f"{verdict} by a reviewer" + (f": {note}" if note else "")
            ),
        ]
        session.flush()
        return public(row)


def explain(row: EngageReferral) -> str:
    """Every decision on a referral, one line each: the sentence support reads to a customer."""
    lines = [
        f"Referral #{row.id}: customer #{row.referee_id} referred by customer "
        f"#{row.referrer_id} with code {row.code}: {row.status}."
    ]
    for check in row.checks:
        mark = "FLAG" if check["flagged"] else "ok"
        lines.append(f"  [{mark}] {check['check']}: {check['detail']}")
    if row.status == "review":
        lines.append("  Waiting for a person to review the flagged checks.")
    elif row.status == "qualified" and row.reward_due_at is not None:
        lines.append(f"  Rewards due on {row.reward_due_at:%Y-%m-%d} (after the refund window).")
    return "\n".join(lines)


def public(row: EngageReferral) -> ReferralPublic:
    return ReferralPublic(
        id=row.id,
        code=row.code,
        referrer_id=row.referrer_id,
        referee_id=row.referee_id,
        status=row.status,
        checks=list(row.checks),
        qualified_at=row.qualified_at,
        reward_due_at=row.reward_due_at,
        rewarded_at=row.rewarded_at,
        explanation=explain(row),
    )


def list_referrals(
    db: Database, workspace_id: int, status: str | None = None
) -> list[ReferralPublic]:
    with db.session() as session:
        query = select(EngageReferral).where(EngageReferral.workspace_id == workspace_id)
        if status:
            query = query.where(EngageReferral.status == status)
        return [public(r) for r in session.scalars(query.order_by(EngageReferral.id))]


def referral_report(db: Database, workspace_id: int) -> dict[str, int]:
    """Referrals by status, codes issued, points rewarded."""
    with db.session() as session:
        counts = dict(
            session.execute(
                select(EngageReferral.status, func.count())
                .where(EngageReferral.workspace_id == workspace_id)
                .group_by(EngageReferral.status)
            ).all()
        )
        codes = session.scalar(
            select(func.count()).where(EngageReferralCode.workspace_id == workspace_id)
        )
        points = session.scalar(
            select(func.coalesce(func.sum(EngageLedgerEntry.amount), 0)).where(
                EngageLedgerEntry.workspace_id == workspace_id,
                EngageLedgerEntry.kind == "reward",
                EngageLedgerEntry.customer_id.is_not(None),
            )
        )
    return {
        "codes": int(codes or 0),
        "points_rewarded": int(points or 0),
        **{str(k): int(v) for k, v in counts.items()},
    }
