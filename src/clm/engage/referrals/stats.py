"""The referral program at a glance: the funnel from codes issued to rewards, and why
referrals were turned down.

- ``codes``: referral codes issued; ``clicks``: referral links followed (``Referral Link
  Clicked`` events); ``referred``: visitors who clicked and became known customers (every
  referral row, whatever became of it); ``converted``: referred customers who made the
  qualifying signup or purchase; ``rewarded``: referrals paid out.
- ``fraud_rejected``: rejected with a fraud check flagged (self-referral, already a customer,
  shared device, payment or address, referral ring, or a reviewer's rejection of such a flag);
  rejections only for not qualifying or for a refund are not fraud.
- ``rejected_reasons``: rejected referrals by the first flagged check, the reason that
  decided them.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import func, literal, select

from clm.engage.referrals.codes import CLICKED
from clm.store.engine import Database
from clm.store.models import EngageLedgerEntry, EngageReferral, EngageReferralCode, Event

NOT_FRAUD = frozenset({"attribution", "qualifying", "refund", "reward", "review"})


class ReferralStats(BaseModel):
    codes: int
    clicks: int
    referred: int
    converted: int
    in_review: int
    qualified: int  # converted, waiting out the refund window before the reward
    rewarded: int
    points_rewarded: int
    rejected: int
    fraud_rejected: int
    rejected_reasons: dict[str, int]


def referral_stats(db: Database, workspace_id: int) -> ReferralStats:
    with db.session() as session:
        mine = EngageReferral.workspace_id == workspace_id
        by_status = {
            str(s): int(n)
            for s, n in session.execute(
                select(EngageReferral.status, func.count()).where(mine).group_by("status")
            )
        }
        converted = session.scalar(
            select(func.count()).where(mine, EngageReferral.qualified_at.is_not(None))
        )
        codes = session.scalar(
            select(func.count()).where(EngageReferralCode.workspace_id == workspace_id)
        )
        clicks = session.scalar(
            select(func.count()).where(  # the literal name lets ix_events_referral_clicks work
                Event.workspace_id == workspace_id,
                Event.name == literal(CLICKED, literal_execute=True),
            )
        )
        points = session.scalar(
            select(func.coalesce(func.sum(EngageLedgerEntry.amount), 0)).where(
                EngageLedgerEntry.workspace_id == workspace_id,
                EngageLedgerEntry.kind == "reward",
                EngageLedgerEntry.customer_id.is_not(None),
            )
        )
        rejected_checks = session.scalars(
            select(EngageReferral.checks).where(mine, EngageReferral.status == "rejected")
        ).all()
    reasons: dict[str, int] = {}
    fraud = 0
    for checks in rejected_checks:
        flagged = [str(c.get("check")) for c in checks or [] if c.get("flagged")]
        if flagged:
            reasons[flagged[0]] = reasons.get(flagged[0], 0) + 1
        fraud += any(name not in NOT_FRAUD for name in flagged)
    return ReferralStats(
        codes=int(codes or 0),
        clicks=int(clicks or 0),
        referred=sum(by_status.values()),
        converted=int(converted or 0),
        in_review=by_status.get("review", 0),
        qualified=by_status.get("qualified", 0),
        rewarded=by_status.get("rewarded", 0),
        points_rewarded=int(points or 0),
        rejected=by_status.get("rejected", 0),
        fraud_rejected=fraud,
        rejected_reasons=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
