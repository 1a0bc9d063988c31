"""Surveys: send with signed single-use links, record answers as ``survey_answered`` events,
score comments with VADER, open a follow-up task on a detractor or a negative comment.

One-click answers: the email carries one link per score; following it records the answer at
once and offers a comment box (a second single-use token, for the same response). A comment
arrives as another ``survey_answered`` event with the same ``response_id`` and ``revision``
2: the log stays append-only; readers take the latest revision of each response.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clm.engage import eventlog, outbox, tokens
from clm.engage import repository as repo
from clm.engage.schemas import Content, SendRequest
from clm.engage.sentiment import sentiment
from clm.engage.settings import get_engage_settings
from clm.engage.survey_schemas import Answer, AnswerResult, SurveyDefinition, SurveyPublic
from clm.errors import AuthError, Conflict, FieldError, NotFound, ValidationError
from clm.store.engine import Database
from clm.store.models import Customer, EngageSurvey, EngageTask, EngageToken

EVENT = "survey_answered"
DAY = 86_400


def save_survey(db: Database, workspace_id: int, definition: SurveyDefinition) -> SurveyPublic:
    """Create or replace a survey by key."""
    data = definition.model_dump(mode="json")
    with db.transaction() as session:
        row = session.scalar(
            select(EngageSurvey).where(
                EngageSurvey.workspace_id == workspace_id, EngageSurvey.key == definition.key
            )
        )
        if row is None:
            row = EngageSurvey(
                workspace_id=workspace_id,
                key=definition.key,
                type=definition.type,
                definition=data,
                active=True,
                created_at=datetime.now(UTC),
            )
            session.add(row)
        else:
            row.type, row.definition, row.active = definition.type, data, True
        session.flush()
        return _public(row)


def _public(row: EngageSurvey) -> SurveyPublic:
    return SurveyPublic(
        id=row.id, key=row.key, type=row.type, active=row.active, definition=dict(row.definition)
    )


def get_survey(session: Session, workspace_id: int, key: str) -> SurveyDefinition:
    row = session.scalar(
        select(EngageSurvey).where(
            EngageSurvey.workspace_id == workspace_id, EngageSurvey.key == key
        )
    )
    if row is None:
        raise NotFound(f"No survey {key!r}")
    return SurveyDefinition.model_validate(row.definition)


def list_surveys(db: Database, workspace_id: int) -> list[SurveyPublic]:
    with db.session() as session:
        rows = session.scalars(
            select(EngageSurvey)
            .where(EngageSurvey.workspace_id == workspace_id)
            .order_by(EngageSurvey.id)
        )
        return [_public(r) for r in rows]


def _links(token: str, survey: SurveyDefinition) -> dict[str, str]:
    base = f"{get_engage_settings().public_url.rstrip('/')}/public/surveys/answer?token={token}"
    low, high = survey.scale
    links = {"form": base}
    if survey.type != "custom":
        links.update({str(score): f"{base}&score={score}" for score in range(low, high + 1)})
    return links


def _content(survey: SurveyDefinition, links: dict[str, str]) -> Content:
    low, high = survey.scale
    if survey.type == "custom" or survey.channel == "sms":
        text = f"{survey.prompt}\n{links['form']}"
        return Content(subject=survey.subject, text=text)
    scores = range(low, high + 1)
    text = (
        "Hi {{ first_name }},\n\n"
        + survey.prompt
        + "\n\n"
        + "\n".join(f"{s}: {links[str(s)]}" for s in scores)
    )
    buttons = " ".join(f'<a href="{links[str(s)]}">{s}</a>' for s in scores)
    html = f"<p>Hi {{{{ first_name }}}},</p><p>{survey.prompt}</p><p>{buttons}</p>"
    return Content(subject=survey.subject, text=text, html=html)


def survey_requests(
    session: Session,
    workspace_id: int,
    survey: SurveyDefinition,
    customer_ids: Sequence[int],
    now: datetime,
    *,
    source: str = "",
) -> list[SendRequest]:
    """Issue a single-use token per customer (in the caller's transaction) and the sends."""
    requests = []
    for customer_id in customer_ids:
        token, jti = tokens.issue(session, "survey", workspace_id, customer_id, survey.key, now=now)
        requests.append(
            SendRequest(
                customer_id=customer_id,
                channel=survey.channel,
                category="survey",
                purpose="marketing",
                content=_content(survey, _links(token, survey)),
                idempotency_key=f"survey-{jti}",
                source=source or f"survey:{survey.key}",
            )
        )
    return requests


def send_survey(
    db: Database,
    workspace_id: int,
    key: str,
    customer_ids: Sequence[int],
    *,
    now: datetime | None = None,
    source: str = "",
) -> list[outbox.Decided]:
    """Send a survey to customers now (through the guardrails, like every message)."""
    at = now or datetime.now(UTC)
    with db.transaction() as session:
        survey = get_survey(session, workspace_id, key)
        requests = survey_requests(session, workspace_id, survey, customer_ids, at, source=source)
        decided = outbox.decide_in(session, workspace_id, requests, at)
    outbox.blocked_events(db, workspace_id, decided, at)
    outbox.notify_worker()
    return decided


def due_for_schedule(db: Database, workspace_id: int, key: str, now: datetime) -> list[int]:
    """Customers the schedule asks now: not asked this survey within ``every_days``, nor any
    survey within ``min_gap_days``."""
    with db.session() as session:
        survey = get_survey(session, workspace_id, key)
        if survey.schedule is None:
            return []
        everyone = set(
            session.scalars(
                select(Customer.id).where(
                    Customer.workspace_id == workspace_id, Customer.merged_into_id.is_(None)
                )
            )
        )
        recent_same = select(EngageToken.customer_id).where(
            EngageToken.workspace_id == workspace_id,
            EngageToken.purpose == "survey",
            EngageToken.subject == key,
            EngageToken.issued_at > now - timedelta(days=survey.schedule.every_days),
        )
        recent_any = select(EngageToken.customer_id).where(
            EngageToken.workspace_id == workspace_id,
            EngageToken.purpose == "survey",
            EngageToken.issued_at > now - timedelta(days=survey.schedule.min_gap_days),
        )
        asked = set(session.scalars(recent_same)) | set(session.scalars(recent_any))
    return sorted(everyone - asked)


def run_schedules(db: Database, workspace_id: int, now: datetime | None = None) -> int:
    """Send every scheduled survey to the customers it is due for; returns sends decided."""
    at = now or datetime.now(UTC)
    total = 0
    for survey in list_surveys(db, workspace_id):
        if survey.active and survey.definition.get("schedule"):
            due = due_for_schedule(db, workspace_id, survey.key, at)
            for start in range(0, len(due), 1_000):
                total += len(
                    send_survey(db, workspace_id, survey.key, due[start : start + 1_000], now=at)
                )
    return total


def _check_score(survey: SurveyDefinition, answer: Answer) -> None:
    low, high = survey.scale
    if survey.type != "custom" and answer.score is None:
        raise ValidationError("A score is needed", [FieldError(("score",), "required")])
    if answer.score is not None and not low <= answer.score <= high:
        raise ValidationError(
            "Score out of range", [FieldError(("score",), f"between {low} and {high}")]
        )
    known = {q.id: q for q in survey.questions}
    for qid, value in answer.answers.items():
        question = known.get(qid)
        if question is None:
            raise ValidationError("Unknown question", [FieldError(("answers", qid), "unknown")])
        if question.kind == "choice" and value not in question.options:
            raise ValidationError("Invalid choice", [FieldError(("answers", qid), "not an option")])


def is_detractor(survey: SurveyDefinition, score: int | None) -> bool:
    if score is None:
        return False
    limit = survey.follow_up.detractor_at_most
    if survey.type == "ces":
        return score >= (limit if limit is not None else 5)
    default = {"nps": 6, "csat": 2}.get(survey.type, 2)
    return score <= (limit if limit is not None else default)


def answer_survey(db: Database, answer: Answer, *, now: datetime | None = None) -> AnswerResult:
    """Record an answer from a signed link: valid, unexpired, never used before."""
    at = now or datetime.now(UTC)
    claims = tokens.verify(answer.token, "survey", 366 * DAY)
    with db.session() as session:
        survey = get_survey(session, claims.workspace_id, claims.subject)
        if tokens.is_used(session, claims.jti):
            raise Conflict("This link was already used", code="token_used")
    if (at - _issued(db, claims.jti)).total_seconds() > survey.token_days * DAY:
        raise AuthError("This link has expired", code="token_expired")
    _check_score(survey, answer)
    return _record(
        db, survey, claims.workspace_id, claims.customer_id, claims.jti, answer, at, revision=1
    )


def _issued(db: Database, jti: str) -> datetime:
    with db.session() as session:
        issued = session.scalar(select(EngageToken.issued_at).where(EngageToken.jti == jti))
    if issued is None:
        raise AuthError("This link is not valid", code="token_invalid")
    return issued


def add_comment(
    db: Database, token: str, comment: str, *, now: datetime | None = None
) -> AnswerResult:
    """A comment on an answer already given (the box shown after a one-click answer)."""
    at = now or datetime.now(UTC)
    claims = tokens.verify(token, "survey_comment", 7 * DAY)
    with db.session() as session:
        survey = get_survey(session, claims.workspace_id, claims.subject)
    score = claims.data.get("score")
    answer = Answer(token=token, score=score, comment=comment)
    return _record(
        db,
        survey,
        claims.workspace_id,
        claims.customer_id,
        str(claims.data["response"]),
        answer,
        at,
        revision=2,
        jti=claims.jti,
    )


def _record(
    db: Database,
    survey: SurveyDefinition,
    workspace_id: int,
    customer_id: int | None,
    response_id: str,
    answer: Answer,
    at: datetime,
    *,
    revision: int,
    jti: str | None = None,
) -> AnswerResult:
    comment = (answer.comment or "").strip() or None
    score_of_comment = sentiment(comment) if comment else None
    properties: dict[str, Any] = {
        "survey_id": survey.key,
        "survey_type": survey.type,
        "score": answer.score,
        "comment": comment,
        "response_id": response_id,
        "revision": revision,
    }
    if score_of_comment is not None:
        properties["sentiment"] = score_of_comment
    if answer.answers:
        properties["answers"] = answer.answers
    with db.session() as session:
        profiles = repo.customer_profiles(session, workspace_id, [customer_id or 0])
    profile = profiles.get(customer_id or 0)
    # The event first (idempotent by message id), then the token: a crash in between leaves
    # a usable link whose retry stores nothing new.
    eventlog.write(
        db,
        workspace_id,
        [eventlog.track(profile, EVENT, f"survey-{response_id}-{revision}", properties, at)],
    )
    comment_token = None
    task_id = None
    with db.transaction() as session:
        tokens.consume(session, jti or response_id, at)
        if revision == 1:
            comment_token, _ = tokens.issue(
                session,
                "survey_comment",
                workspace_id,
                customer_id,
                survey.key,
                data={"response": response_id, "score": answer.score},
                now=at,
            )
        negative = score_of_comment is not None and (
            score_of_comment <= survey.follow_up.negative_sentiment
        )
        if customer_id is not None and (is_detractor(survey, answer.score) or negative):
            task_id = open_task(
                session,
                workspace_id,
                customer_id,
                survey,
                response_id,
                answer.score,
                comment,
                score_of_comment,
                profile,
                at,
            )
    return AnswerResult(
        survey_id=survey.key,
        survey_type=survey.type,
        score=answer.score,
        sentiment=score_of_comment,
        follow_up_task_id=task_id,
        comment_token=comment_token,
    )


def open_task(
    session: Session,
    workspace_id: int,
    customer_id: int,
    survey: SurveyDefinition,
    response_id: str,
    score: int | None,
    comment: str | None,
    sentiment_score: float | None,
    profile: dict[str, Any] | None,
    at: datetime,
) -> int:
    """A follow-up for the account owner; one per response, however many revisions."""
    owner = survey.follow_up.owner or ((profile or {}).get("traits") or {}).get("account_owner")
    why = []
    if is_detractor(survey, score):
        why.append(f"{survey.type.upper()} score {score}")
    if sentiment_score is not None and sentiment_score <= survey.follow_up.negative_sentiment:
        why.append(f"negative comment (sentiment {sentiment_score})")
    values = {
        "workspace_id": workspace_id,
        "customer_id": customer_id,
        "kind": "survey_follow_up",
        "title": f"Follow up: {', '.join(why)}",
        "owner": owner,
        "detail": {
            "survey_id": survey.key,
            "response_id": response_id,
            "score": score,
            "comment": comment,
            "sentiment": sentiment_score,
        },
        "status": "open",
        "dedupe_key": f"survey-{response_id}",
        "created_at": at,
    }
    insert_fn = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert_fn(EngageTask)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "dedupe_key"])
    )
    task_id = session.scalar(
        select(EngageTask.id).where(
            EngageTask.workspace_id == workspace_id, EngageTask.dedupe_key == values["dedupe_key"]
        )
    )
    assert task_id is not None
    return int(task_id)


def survey_for_token(db: Database, token: str) -> SurveyDefinition:
    """The survey a (valid) answer link is for, without using the link up."""
    claims = tokens.verify(token, "survey", 366 * DAY)
    with db.session() as session:
        return get_survey(session, claims.workspace_id, claims.subject)
