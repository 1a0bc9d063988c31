"""One survey's results: its score (NPS, CSAT or CES by the standard definitions), the spread
of answers, the trend by period, and the comments with their sentiment.

Answers are the ``survey_answered`` events CLM writes (``answers.py``). A response may be
written twice (a comment added after a one-click answer is revision 2 of the same
``response_id``): it counts once, with its latest revision that has a score, as the feedback
report counts it, and shows its latest comment. Both are read from each response's stored
latest answer (``stored_answers``), caught up with the log before each read.

- NPS (0-10): % promoters (9-10) minus % detractors (0-6), from -100 to 100.
- CSAT (1-5): % satisfied (4 or 5).
- CES (1-7): the mean score (lower is easier).
- Comment sentiment: VADER's compound score; >= 0.05 positive, <= -0.05 negative (VADER's
  own thresholds), else neutral.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.orm import Session

from clm.engage.surveys.sentiment import NEGATIVE
from clm.engage.surveys.service import DAY, get_survey
from clm.engage.surveys.stored_answers import ensure_answers
from clm.store.engine import Database
from clm.store.models import Customer, EngageToken, Identity, SurveyAnswer

Granularity = Literal["week", "month", "quarter"]
POSITIVE = 0.05


class PeriodScore(BaseModel):
    period: str  # 2026-03, 2026-W09, 2026-Q1
    responses: int
    value: float  # NPS, CSAT % or CES mean, as ``SurveyResults.value``
    promoters: int  # NPS 9-10, CSAT 4-5 (satisfied); 0 for CES
    detractors: int  # NPS 0-6, CSAT 1-2; 0 for CES


class SurveyResults(BaseModel):
    key: str
    type: str
    metric: str  # "NPS", "CSAT %", "CES" or "mean score"
    scale: tuple[int, int]
    asked: int  # answer links issued
    responses: int  # answered (each response once)
    response_rate: float | None  # responses / asked
    value: float | None  # the metric over every response; None without responses
    mean_score: float | None
    promoters: int
    passives: int
    detractors: int
    distribution: dict[str, int]  # answers per score, every score of the scale
    comments: int
    trend: list[PeriodScore]
    granularity: str


class SurveyComment(BaseModel):
    customer_id: int | None
    customer: str
    score: int | None
    comment: str
    sentiment: float | None
    tone: str  # positive | neutral | negative
    at: datetime


class CommentPage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[SurveyComment]


def _period(ts: int, granularity: Granularity) -> str:
    day = datetime.fromtimestamp(ts, UTC)
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


# Promoters score at least the first, detractors at most the second (NPS 9-10 / 0-6, CSAT
# "satisfied" 4-5 / "dissatisfied" 1-2); other types split nobody.
SPLITS = {"nps": (9, 6), "csat": (4, 2)}


@dataclass
class Tally:
    """Responses counted: how many, their scores' sum, promoters and detractors."""

    responses: int = 0
    total: int = 0
    promoters: int = 0
    detractors: int = 0

    def add(self, other: Tally) -> None:
        self.responses += other.responses
        self.total += other.total
        self.promoters += other.promoters
        self.detractors += other.detractors


def _value(kind: str, tally: Tally) -> float | None:
    """NPS, CSAT % or the mean score (CES and custom surveys)."""
    if not tally.responses:
        return None
    if kind == "nps":
        return round(100 * (tally.promoters - tally.detractors) / tally.responses, 2)
    if kind == "csat":
        return round(100 * tally.promoters / tally.responses, 2)
    return round(tally.total / tally.responses, 4)


METRIC = {"nps": "NPS", "csat": "CSAT %", "ces": "CES"}


def _scored(workspace_id: int, key: str) -> list[ColumnElement[bool]]:
    return [
        SurveyAnswer.workspace_id == workspace_id,
        SurveyAnswer.survey_key == key,
        SurveyAnswer.score.is_not(None),
    ]


def _by_day(session: Session, workspace_id: int, key: str, kind: str) -> list[tuple[int, Tally]]:
    """Each day's tally, summed in the database over one index: at most 366 rows a year
    however many answers there are (a week, month or quarter is a run of whole UTC days)."""
    day = SurveyAnswer.score_ts // DAY
    score = SurveyAnswer.score
    high, low = SPLITS.get(kind, (None, None))
    promoters = func.sum(case((score >= high, 1), else_=0)) if high is not None else literal(0)
    detractors = func.sum(case((score <= low, 1), else_=0)) if low is not None else literal(0)
    rows = session.execute(
        select(day, func.count(), func.sum(score), promoters, detractors)
        .where(*_scored(workspace_id, key))
        .group_by(day)
    ).all()
    return [(int(d), Tally(int(n), int(total or 0), int(p or 0), int(m or 0)))
            for d, n, total, p, m in rows if d is not None]  # fmt: skip


def survey_results(
    db: Database, workspace_id: int, key: str, granularity: Granularity = "month"
) -> SurveyResults:
    """The survey's score, spread, response rate and trend (404 for an unknown survey)."""
    ensure_answers(db, workspace_id)
    with db.session() as session:
        survey = get_survey(session, workspace_id, key)
        asked = session.scalar(
            select(func.count()).where(
                EngageToken.workspace_id == workspace_id,
                EngageToken.purpose == "survey",
                EngageToken.subject == key,
            )
        )
        comments = session.scalar(
            select(func.count()).where(
                SurveyAnswer.workspace_id == workspace_id,
                SurveyAnswer.survey_key == key,
                SurveyAnswer.comment_ts.is_not(None),
            )
        )
        days = _by_day(session, workspace_id, key, survey.type)
        spread = dict(
            session.execute(
                select(SurveyAnswer.score, func.count())
                .where(*_scored(workspace_id, key))
                .group_by(SurveyAnswer.score)
            ).all()
        )
    whole = Tally()
    by_period: dict[str, Tally] = {}
    for day, tally in days:
        whole.add(tally)
        by_period.setdefault(_period(day * DAY, granularity), Tally()).add(tally)
    trend = []
    for period in sorted(by_period):
        part = by_period[period]
        value = _value(survey.type, part)
        assert value is not None
        trend.append(PeriodScore(period=period, responses=part.responses, value=value,
                                 promoters=part.promoters, detractors=part.detractors))  # fmt: skip
    n = whole.responses
    low, high = survey.scale
    split = survey.type in SPLITS
    return SurveyResults(
        key=key,
        type=survey.type,
        metric=METRIC.get(survey.type, "mean score"),
        scale=(low, high),
        asked=int(asked or 0),
        responses=n,
        response_rate=round(n / asked, 4) if asked else None,
        value=_value(survey.type, whole) if survey.type in METRIC else _value("ces", whole),
        mean_score=round(whole.total / n, 4) if n else None,
        promoters=whole.promoters,
        passives=n - whole.promoters - whole.detractors if split else 0,
        detractors=whole.detractors,
        distribution={str(s): int(spread.get(s, 0)) for s in range(low, high + 1)},
        comments=int(comments or 0),
        trend=trend,
        granularity=granularity,
    )


def tone(sentiment: float | None) -> str:
    if sentiment is None:
        return "neutral"
    return (
        "positive" if sentiment >= POSITIVE else "negative" if sentiment <= NEGATIVE else "neutral"
    )


def survey_comments(
    db: Database,
    workspace_id: int,
    key: str,
    *,
    tone_filter: Literal["positive", "neutral", "negative"] | None = None,
    page: int = 1,
    per_page: int = 20,
) -> CommentPage:
    """The survey's comments (each response's latest), newest first, paged in the database."""
    ensure_answers(db, workspace_id)
    answer = SurveyAnswer
    sentiment = answer.sentiment
    where = [
        answer.workspace_id == workspace_id,
        answer.survey_key == key,
        answer.comment_ts.is_not(None),
    ]
    if tone_filter == "positive":
        where.append(sentiment >= POSITIVE)
    elif tone_filter == "negative":
        where.append(sentiment <= NEGATIVE)
    elif tone_filter == "neutral":
        where.append(sentiment.is_(None) | ((sentiment > NEGATIVE) & (sentiment < POSITIVE)))
    with db.session() as session:
        get_survey(session, workspace_id, key)
        total = session.scalar(select(func.count()).where(*where)) or 0
        rows = session.execute(
            select(answer.comment_ts, answer.score, answer.comment, sentiment, Identity.customer_id)
            .join(Identity, Identity.id == answer.identity_id)
            .where(*where)
            .order_by(answer.comment_ts.desc(), answer.response_key.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        ids = {int(r.customer_id) for r in rows if r.customer_id is not None}
        people = {
            c.id: c
            for c in session.scalars(
                select(Customer).where(
                    Customer.workspace_id == workspace_id, Customer.id.in_(ids or {0})
                )
            )
        }
    items = []
    for ts, score, comment, feeling, customer_id in rows:
        assert ts is not None  # the rows with a comment have its time
        found = people.get(customer_id) if customer_id is not None else None
        items.append(
            SurveyComment(
                customer_id=customer_id,
                customer=(found.email or found.user_id or f"#{found.id}") if found else "–",
                score=score,
                comment=str(comment),
                sentiment=feeling,
                tone=tone(feeling),
                at=datetime.fromtimestamp(int(ts), UTC),
            )
        )
    return CommentPage(total=int(total), page=page, per_page=per_page, items=items)
