"""One survey's results: its score (NPS, CSAT or CES by the standard definitions), the spread
of answers, the trend by period, and the comments with their sentiment.

Answers are the ``survey_answered`` events CLM writes (``answers.py``). A response may be
written twice (a comment added after a one-click answer is revision 2 of the same
``response_id``): it counts once, with its latest revision that has a score, as the feedback
report counts it.

- NPS (0-10): % promoters (9-10) minus % detractors (0-6), from -100 to 100.
- CSAT (1-5): % satisfied (4 or 5).
- CES (1-7): the mean score (lower is easier).
- Comment sentiment: VADER's compound score; >= 0.05 positive, <= -0.05 negative (VADER's
  own thresholds), else neutral.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, literal, select

from clm.engage.surveys.sentiment import NEGATIVE
from clm.engage.surveys.service import EVENT, get_survey
from clm.store.engine import Database
from clm.store.models import Customer, EngageToken, Event, Identity

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


def _answers_of(workspace_id: int, key: str) -> list[ColumnElement[bool]]:
    # An answer is the customer's own doing (a touchpoint), not an event on CLM's channel.
    return [
        Event.workspace_id == workspace_id,
        # Written inline, not bound: the partial index ix_events_survey_answers is used only
        # when the planner sees the literal name its WHERE holds.
        Event.name == literal(EVENT, literal_execute=True),
        Event.properties["survey_id"].as_string() == key,
    ]


def _score(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def latest_answers(db: Database, workspace_id: int, key: str) -> list[tuple[int, int]]:
    """(score, ts) of each response to the survey: its latest revision that has a score."""
    props = Event.properties
    with db.session() as session:
        rows = session.execute(
            # The fields, not the whole JSON: parsing every answer's document in Python was
            # most of this read's time.
            select(
                Event.message_id,
                Event.ts,
                props["score"].as_float(),
                props["response_id"].as_string(),
                props["revision"].as_float(),
            ).where(*_answers_of(workspace_id, key), props["score"].as_float().is_not(None))
        ).all()
    best: dict[str, tuple[int, int, str, int]] = {}
    for message_id, ts, score, response_id, revision in rows:
        response = f"r:{response_id}" if response_id else f"m:{message_id}"
        rank = (int(revision or 1), int(ts), str(message_id), int(score))
        if response not in best or rank > best[response]:
            best[response] = rank
    return [(score, ts) for _, ts, _, score in best.values()]


def _period(ts: int, granularity: Granularity) -> str:
    day = datetime.fromtimestamp(ts, UTC)
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


def _split(kind: str, scores: list[int]) -> tuple[int, int, int]:
    """(promoters, passives, detractors): NPS 9-10 / 7-8 / 0-6; CSAT 4-5 / 3 / 1-2."""
    if kind == "nps":
        high, low = sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
    elif kind == "csat":
        high, low = sum(s >= 4 for s in scores), sum(s <= 2 for s in scores)
    else:
        return 0, 0, 0
    return high, len(scores) - high - low, low


def _value(kind: str, scores: list[int]) -> float | None:
    if not scores:
        return None
    promoters, _, detractors = _split(kind, scores)
    if kind == "nps":
        return round(100 * (promoters - detractors) / len(scores), 2)
    if kind == "csat":
        return round(100 * promoters / len(scores), 2)
    return round(sum(scores) / len(scores), 4)


METRIC = {"nps": "NPS", "csat": "CSAT %", "ces": "CES"}


def survey_results(
    db: Database, workspace_id: int, key: str, granularity: Granularity = "month"
) -> SurveyResults:
    """The survey's score, spread, response rate and trend (404 for an unknown survey)."""
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
                *_answers_of(workspace_id, key),
                Event.properties["comment"].as_string().is_not(None),
            )
        )
    answers = latest_answers(db, workspace_id, key)
    scores = [s for s, _ in answers]
    low, high = survey.scale
    by_period: dict[str, list[int]] = {}
    for score, ts in answers:
        by_period.setdefault(_period(ts, granularity), []).append(score)
    trend = []
    for period in sorted(by_period):
        part = by_period[period]
        promoters, _, detractors = _split(survey.type, part)
        value = _value(survey.type, part)
        assert value is not None
        trend.append(PeriodScore(period=period, responses=len(part), value=value,
                                 promoters=promoters, detractors=detractors))  # fmt: skip
    promoters, passives, detractors = _split(survey.type, scores)
    return SurveyResults(
        key=key,
        type=survey.type,
        metric=METRIC.get(survey.type, "mean score"),
        scale=(low, high),
        asked=int(asked or 0),
        responses=len(scores),
        response_rate=round(len(scores) / asked, 4) if asked else None,
        value=_value(survey.type, scores) if survey.type in METRIC else _value("ces", scores),
        mean_score=round(sum(scores) / len(scores), 4) if scores else None,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        distribution={str(s): scores.count(s) for s in range(low, high + 1)},
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
    """The survey's comments, newest first, paged in the database."""
    comment = Event.properties["comment"].as_string()
    sentiment = Event.properties["sentiment"].as_float()
    where = [*_answers_of(workspace_id, key), comment.is_not(None)]
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
            select(Event.ts, Event.properties, Identity.customer_id)
            .join(Identity, Identity.id == Event.identity_id)
            .where(*where)
            .order_by(Event.ts.desc(), Event.id.desc())
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
    for ts, props, customer_id in rows:
        found = people.get(customer_id) if customer_id is not None else None
        score = props.get("sentiment")
        items.append(
            SurveyComment(
                customer_id=customer_id,
                customer=(found.email or found.user_id or f"#{found.id}") if found else "–",
                score=_score(props.get("score")),
                comment=str(props.get("comment")),
                sentiment=float(score) if isinstance(score, int | float) else None,
                tone=tone(float(score) if isinstance(score, int | float) else None),
                at=datetime.fromtimestamp(int(ts), UTC),
            )
        )
    return CommentPage(total=int(total), page=page, per_page=per_page, items=items)
