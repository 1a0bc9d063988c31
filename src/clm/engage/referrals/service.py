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

from datetime import datetime

from sqlalchemy import func, select

from clm.engage import eventlog
from clm.engage.referrals.codes import (
    CLICKED,
    Landing,
    codes_for,
    get_program,
    issue_codes,
    link,
    record_click,
    set_program,
)
from clm.engage.referrals.schemas import ReferralPublic, ReferralReport
from clm.engage.referrals.steps import (
    CONVERTED,
    REWARDED,
    attribute,
    explained_check,
    qualify,
    reward,
)
from clm.errors import Conflict, NotFound
from clm.store.engine import Database
from clm.store.models import EngageLedgerEntry, EngageReferral, EngageReferralCode

__all__ = [
    "CLICKED",
    "CONVERTED",
    "REWARDED",
    "Landing",
    "codes_for",
    "explain",
    "get_program",
    "issue_codes",
    "link",
    "list_referrals",
    "process",
    "record_click",
    "referral_report",
    "review",
    "set_program",
]


def process(db: Database, workspace_id: int, now: datetime) -> ReferralReport:
    """Attribute new referrals, qualify them (with fraud checks), reward the due ones."""
    with db.transaction() as session:
        program = get_program(session, workspace_id)
        attributed, rejected = attribute(session, workspace_id, now)
        converted, qualified = qualify(session, workspace_id, program, now)
        rewarded, paid = reward(session, workspace_id, program, now)
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
            explained_check(
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
