"""Everything engagement knows about one customer, for the customer 360: survey answers and
comments with their sentiment, referrals given and received, points and coupons, messages sent
and blocked (with the reason and the playbook or survey that sent them), journeys, open tasks.

Every query is by the customer (and the customers merged into them), on an indexed column or a
small table, so the page reads it in milliseconds at any workspace size.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from clm.engage.playbooks.schemas import JourneyPublic
from clm.engage.playbooks.service import journey_history
from clm.engage.referrals.coupons import CouponPublic
from clm.engage.referrals.ledger import LedgerEntryPublic, account, balance_in
from clm.engage.referrals.schemas import ReferralPublic
from clm.engage.referrals.service import public as referral_public
from clm.engage.schemas import MessagePublic
from clm.engage.surveys.sentiment import NEGATIVE, sentiment
from clm.store.customers import merged_ids, require_customer
from clm.store.engine import Database
from clm.store.models import (
    EngageCoupon,
    EngageLedgerEntry,
    EngageMessage,
    EngageReferral,
    EngageReferralCode,
    EngageTask,
    Event,
    Identity,
)

LIMIT = 100
SURVEY_EVENTS = {
    "survey_answered": None,  # CLM's own surveys: the type is in properties.survey_type
    "NPS Survey Answered": "nps",
    "CSAT Survey Answered": "csat",
    "CES Survey Answered": "ces",
    "Survey Answered": "custom",
}
POSITIVE = 0.05  # VADER's convention, as NEGATIVE: compound >= 0.05 is positive

__all__ = [
    "CouponHeld",
    "CustomerEngagement",
    "CustomerMessage",
    "SurveyAnswerPublic",
    "TaskPublic",
    "customer_engagement",
]


class SurveyAnswerPublic(BaseModel):
    """One survey answer (the latest revision of a response, so a comment added later shows)."""

    at: datetime
    survey_id: str | None
    survey_type: str  # nps | csat | ces | custom
    score: float | None
    comment: str | None
    sentiment: float | None  # VADER compound, -1 .. 1
    sentiment_label: str | None  # positive (>= 0.05) | negative (<= -0.05) | neutral


class CustomerMessage(MessagePublic):
    """A message with what sent it, read from its source (``playbook:<name>:v<n>:<step>``,
    ``survey:<key>``, or what the sender named)."""

    playbook: str | None = None
    step: str | None = None
    survey: str | None = None


class CouponHeld(CouponPublic):
    status: str  # usable | used | expired


class TaskPublic(BaseModel):
    id: int
    kind: str
    title: str
    owner: str | None
    status: str
    created_at: datetime


class CustomerEngagement(BaseModel):
    """What engagement knows of one customer; lists newest first, at most 100 each, with the
    full counts beside them."""

    customer_id: int
    surveys: list[SurveyAnswerPublic]
    referral_code: str | None
    referrals_given: list[ReferralPublic]
    referred_by: ReferralPublic | None
    points_balance: int
    points: list[LedgerEntryPublic]
    coupons: list[CouponHeld]
    messages: list[CustomerMessage]
    messages_sent: int
    messages_blocked: int
    journeys: list[JourneyPublic]
    tasks: list[TaskPublic]


def sentiment_label(value: float | None) -> str | None:
    if value is None:
        return None
    return "positive" if value >= POSITIVE else "negative" if value <= NEGATIVE else "neutral"


def _number(value: object) -> float | None:
    """A number from event properties (a client may send anything there), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _ids(session: Session, customer_id: int) -> list[int]:
    return [customer_id, *merged_ids(session, customer_id)]


def _surveys(session: Session, workspace_id: int, ids: list[int]) -> list[SurveyAnswerPublic]:
    rows = session.execute(
        select(Event.timestamp, Event.name, Event.properties)
        .join(Identity, Identity.id == Event.identity_id)
        .where(
            Event.workspace_id == workspace_id,
            Identity.customer_id.in_(ids),
            Event.name.in_(list(SURVEY_EVENTS)),
        )
        .order_by(Event.ts.desc(), Event.id.desc())
    ).all()
    answers: list[SurveyAnswerPublic] = []
    seen: set[str] = set()
    for when, name, raw in rows:
        props = dict(raw or {})
        response = props.get("response_id")
        if response is not None:  # newest first: the first row of a response is its latest
            if str(response) in seen:
                continue
            seen.add(str(response))
        comment = props.get("comment") if isinstance(props.get("comment"), str) else None
        comment = (comment or "").strip() or None
        mood = _number(props.get("sentiment"))
        if mood is None and comment:
            mood = sentiment(comment)
        survey = props.get("survey_id")
        answers.append(
            SurveyAnswerPublic(
                at=when,
                survey_id=survey if isinstance(survey, str) else None,
                survey_type=str(SURVEY_EVENTS[name] or props.get("survey_type") or "custom"),
                score=_number(props.get("score")),
                comment=comment,
                sentiment=mood,
                sentiment_label=sentiment_label(mood),
            )
        )
        if len(answers) == LIMIT:
            break
    return answers


def _source(source: str) -> dict[str, str | None]:
    parts = source.split(":")
    if parts[0] == "playbook" and len(parts) >= 2:
        return {"playbook": parts[1], "step": parts[3] if len(parts) >= 4 else None}
    if parts[0] == "survey" and len(parts) >= 2:
        return {"survey": parts[1]}
    return {}


def _messages(
    session: Session, workspace_id: int, ids: list[int]
) -> tuple[list[CustomerMessage], int, int]:
    mine = (EngageMessage.workspace_id == workspace_id) & EngageMessage.customer_id.in_(ids)
    rows = session.scalars(
        select(EngageMessage).where(mine).order_by(EngageMessage.id.desc()).limit(LIMIT)
    ).all()
    counts = dict(
        session.execute(
            select(EngageMessage.status, func.count()).where(mine).group_by(EngageMessage.status)
        ).all()
    )
    messages = [
        CustomerMessage.model_validate(
            {**MessagePublic.model_validate(r).model_dump(), **_source(r.source or "")}
        )
        for r in rows
    ]
    return messages, int(counts.get("sent", 0)), int(counts.get("blocked", 0))


def _coupons(
    session: Session, workspace_id: int, ids: list[int], now: datetime
) -> list[CouponHeld]:
    rows = session.scalars(
        select(EngageCoupon)
        .where(EngageCoupon.workspace_id == workspace_id, EngageCoupon.customer_id.in_(ids))
        .order_by(EngageCoupon.id.desc())
        .limit(LIMIT)
    ).all()
    held = []
    for row in rows:
        expires = row.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        status = (
            "used"
            if row.redemptions >= row.max_redemptions
            else "expired"
            if expires is not None and expires <= now
            else "usable"
        )
        held.append(CouponHeld(**CouponPublic.model_validate(row).model_dump(), status=status))
    return held


def _referrals(
    session: Session, workspace_id: int, ids: list[int]
) -> tuple[str | None, list[ReferralPublic], ReferralPublic | None]:
    code = session.scalar(
        select(EngageReferralCode.code)
        .where(EngageReferralCode.workspace_id == workspace_id)
        .where(EngageReferralCode.customer_id.in_(ids))
        .order_by(EngageReferralCode.id)
        .limit(1)
    )
    rows = session.scalars(
        select(EngageReferral)
        .where(
            EngageReferral.workspace_id == workspace_id,
            or_(EngageReferral.referrer_id.in_(ids), EngageReferral.referee_id.in_(ids)),
        )
        .order_by(EngageReferral.id.desc())
    ).all()
    given = [referral_public(r) for r in rows if r.referrer_id in ids][:LIMIT]
    received = next((referral_public(r) for r in rows if r.referee_id in ids), None)
    return code, given, received


def _points(
    session: Session, workspace_id: int, customer_id: int
) -> tuple[int, list[LedgerEntryPublic]]:
    rows = session.scalars(
        select(EngageLedgerEntry)
        .where(
            EngageLedgerEntry.workspace_id == workspace_id,
            EngageLedgerEntry.customer_id == customer_id,
            EngageLedgerEntry.account == account(customer_id),
        )
        .order_by(EngageLedgerEntry.id.desc())
        .limit(LIMIT)
    ).all()
    entries = [LedgerEntryPublic.model_validate(r) for r in rows]
    return balance_in(session, workspace_id, customer_id), entries


def _tasks(session: Session, workspace_id: int, ids: list[int]) -> list[TaskPublic]:
    rows = session.scalars(
        select(EngageTask)
        .where(EngageTask.workspace_id == workspace_id, EngageTask.customer_id.in_(ids))
        .order_by(EngageTask.id.desc())
        .limit(LIMIT)
    ).all()
    return [
        TaskPublic(
            id=t.id, kind=t.kind, title=t.title, owner=t.owner, status=t.status,
            created_at=t.created_at,
        )
        for t in rows
    ]  # fmt: skip


def customer_engagement(
    db: Database, workspace_id: int, customer_id: int, now: datetime | None = None
) -> CustomerEngagement:
    """The customer's engagement (NotFound for another workspace's or nobody's id; a merged-away
    id reads the customer it merged into)."""
    when = now or datetime.now(UTC)
    with db.session() as session:
        live = require_customer(session, workspace_id, customer_id)
        ids = _ids(session, live)
        surveys = _surveys(session, workspace_id, ids)
        code, given, received = _referrals(session, workspace_id, ids)
        balance, entries = _points(session, workspace_id, live)
        coupons = _coupons(session, workspace_id, ids, when)
        messages, sent, blocked = _messages(session, workspace_id, ids)
        tasks = _tasks(session, workspace_id, ids)
    journeys = journey_history(db, workspace_id, live)
    journeys.sort(key=lambda j: j.enrolled_at, reverse=True)
    return CustomerEngagement(
        customer_id=live,
        surveys=surveys,
        referral_code=code,
        referrals_given=given,
        referred_by=received,
        points_balance=balance,
        points=entries,
        coupons=coupons,
        messages=messages,
        messages_sent=sent,
        messages_blocked=blocked,
        journeys=journeys[:LIMIT],
        tasks=tasks,
    )
