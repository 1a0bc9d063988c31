"""Surveys: send with signed single-use links, record answers as ``survey_answered`` events,
score comments with VADER, open a follow-up task on a detractor or a negative comment.

One-click answers: the email carries one link per score; following it records the answer at
once and offers a comment box (a second single-use token, for the same response). A comment
arrives as another ``survey_answered`` event with the same ``response_id`` and ``revision``
2 (see ``survey_answers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.config import get_settings
from clm.engage.delivery import outbox, tokens
from clm.engage.schemas import Content, SendRequest
from clm.engage.surveys.schemas import SurveyDefinition, SurveyPublic
from clm.errors import Conflict, NotFound
from clm.store.engine import Database
from clm.store.models import Customer, EngageSurvey, EngageToken

EVENT = "survey_answered"
DAY = 86_400


def save_survey(
    db: Database, workspace_id: int, definition: SurveyDefinition, *, create_only: bool = False
) -> SurveyPublic:
    """Create or replace a survey by key (``create_only``: a key in use is a Conflict)."""
    data = definition.model_dump(mode="json")
    with db.transaction() as session:
        row = session.scalar(
            select(EngageSurvey).where(
                EngageSurvey.workspace_id == workspace_id, EngageSurvey.key == definition.key
            )
        )
        if row is not None and create_only:
            raise Conflict(f"A survey with key {definition.key!r} exists already")
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
        id=row.id, key=row.key, type=row.type, active=row.active, definition=dict(row.definition),
        answer_link=_answer_page(),
    )  # fmt: skip


def _answer_page() -> str:
    return f"{get_settings().public_url.rstrip('/')}/public/surveys/answer"


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
    base = f"{_answer_page()}?token={token}"
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
