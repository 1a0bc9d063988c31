"""Survey answers: a signed single-use link in, a ``survey_answered`` event out, a comment's
sentiment scored, and a follow-up task when the answer calls for one.

A comment arrives as another ``survey_answered`` event with the same ``response_id`` and
``revision`` 2: the log stays append-only; readers take the latest revision of each response.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage.delivery import tokens
from clm.engage.surveys.schemas import Answer, AnswerResult, SurveyDefinition
from clm.engage.surveys.sentiment import sentiment
from clm.engage.surveys.service import DAY, EVENT, get_survey
from clm.errors import AuthError, Conflict, FieldError, ValidationError
from clm.store.engine import Database
from clm.store.models import EngageTask, EngageToken


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
