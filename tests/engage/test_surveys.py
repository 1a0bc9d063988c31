"""Surveys: signed one-click links, single use, expiry, VADER, follow-ups, schedules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.delivery import deliver as delivery
from clm.engage.schemas import EmailProvider, Policy
from clm.engage.surveys import answers as survey_answers
from clm.engage.surveys import service as surveys
from clm.engage.surveys.schemas import Answer, SurveyDefinition
from clm.errors import AuthError, Conflict, ValidationError
from clm.store.engine import Database
from clm.store.models import EngageTask, Event
from tests.conftest import make_tenant
from tests.engage.conftest import SmtpSink, add_customer

NOW = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)
NPS = SurveyDefinition(key="nps", type="nps", schedule={"every_days": 90, "min_gap_days": 30})


def workspace(db: Database, smtp: SmtpSink | None = None) -> int:
    ws = make_tenant(db).id
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
        if smtp:
            repo.set_provider(session, ws, EmailProvider(host=smtp.host, port=smtp.port))
    surveys.save_survey(db, ws, NPS)
    return ws


def customer(db: Database, ws: int, name: str, **traits: object) -> int:
    cid = add_customer(db, ws, name, traits=dict(traits))
    with db.transaction() as session:
        repo.set_consent(session, ws, cid, "email", "marketing", True)
    return cid


def answers(db: Database) -> list[dict[str, object]]:
    with db.session() as session:
        rows = session.scalars(
            select(Event).where(Event.name == "survey_answered").order_by(Event.id)
        )
        return [dict(e.properties) for e in rows]


def test_one_click_answer_from_the_email(db: Database, smtp_sink: SmtpSink) -> None:
    ws = workspace(db, smtp_sink)
    ada = customer(db, ws, "ada", first_name="Ada")
    [decided] = surveys.send_survey(db, ws, "nps", [ada], now=NOW)
    assert decided.status == "pending"
    assert delivery.deliver_due(db, now=NOW).sent == 1
    [mail] = smtp_sink.messages
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    links = dict(re.findall(r"^(\d+): (\S+?)\r?$", text, re.M))
    assert sorted(links, key=int) == [str(s) for s in range(11)]
    query = parse_qs(urlparse(links["9"]).query)
    token, score = query["token"][0], int(query["score"][0])
    result = survey_answers.answer_survey(db, Answer(token=token, score=score), now=NOW)
    assert (result.score, result.follow_up_task_id) == (9, None)
    [event] = answers(db)
    assert event["survey_id"] == "nps" and event["survey_type"] == "nps" and event["score"] == 9
    assert "sentiment" not in event

    with pytest.raises(Conflict, match="already used"):
        survey_answers.answer_survey(db, Answer(token=token, score=3), now=NOW)
    assert len(answers(db)) == 1  # the reuse stored nothing

    # The comment box after the one-click answer: a second event for the same response.
    assert result.comment_token is not None
    survey_answers.add_comment(db, result.comment_token, "Love it, great service!", now=NOW)
    first, second = answers(db)
    assert second["response_id"] == first["response_id"] and second["revision"] == 2
    assert second["comment"] == "Love it, great service!"
    assert float(second["sentiment"]) > 0.5  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        survey_answers.add_comment(db, result.comment_token, "again", now=NOW)


def test_tampered_expired_and_out_of_range(sqlite_db: Database) -> None:
    db = sqlite_db
    ws = workspace(db)
    cid = customer(db, ws, "bob")
    with db.transaction() as session:
        [request] = surveys.survey_requests(session, ws, NPS, [cid], NOW)
    token = re.search(r"token=([^&\s]+)", request.content.text)
    assert token is not None
    good = token.group(1)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    with pytest.raises(AuthError, match="not valid"):
        survey_answers.answer_survey(db, Answer(token=tampered, score=5), now=NOW)
    with pytest.raises(AuthError, match="not valid"):  # signed for another purpose
        from clm.engage.delivery.tokens import sign

        other, _ = sign("unsubscribe", ws, cid, "nps")
        survey_answers.answer_survey(db, Answer(token=other, score=5), now=NOW)
    with pytest.raises(ValidationError):
        survey_answers.answer_survey(db, Answer(token=good, score=11), now=NOW)
    with pytest.raises(AuthError, match="expired"):
        survey_answers.answer_survey(db, Answer(token=good, score=5), now=NOW + timedelta(days=15))
    assert survey_answers.answer_survey(db, Answer(token=good, score=5), now=NOW).score == 5


def test_detractor_with_negative_comment_opens_a_follow_up(sqlite_db: Database) -> None:
    db = sqlite_db
    ws = workspace(db)
    cid = customer(db, ws, "cy", account_owner="sam@shop.example")
    with db.transaction() as session:
        [request] = surveys.survey_requests(session, ws, NPS, [cid], NOW)
    token = re.search(r"token=([^&\s]+)", request.content.text).group(1)  # type: ignore[union-attr]
    result = survey_answers.answer_survey(
        db,
        Answer(token=token, score=3, comment="Terrible support, I am very disappointed."),
        now=NOW,
    )
    assert result.sentiment is not None and result.sentiment < -0.5
    with db.session() as session:
        task = session.scalars(select(EngageTask)).one()
    assert task.id == result.follow_up_task_id
    assert task.owner == "sam@shop.example"
    assert task.title.startswith("Follow up: NPS score 3, negative comment")
    [event] = answers(db)
    assert event["sentiment"] == result.sentiment


def test_recurring_schedule_never_asks_twice_too_soon(sqlite_db: Database) -> None:
    db = sqlite_db
    ws = workspace(db)
    a, b = customer(db, ws, "a"), customer(db, ws, "b")
    assert surveys.run_schedules(db, ws, NOW) == 2
    assert surveys.run_schedules(db, ws, NOW + timedelta(days=10)) == 0
    # Another survey sent to "a" recently blocks the NPS by the global gap.
    surveys.save_survey(db, ws, SurveyDefinition(key="csat", type="csat"))
    surveys.send_survey(db, ws, "csat", [a], now=NOW + timedelta(days=80))
    assert surveys.due_for_schedule(db, ws, "nps", NOW + timedelta(days=91)) == [b]
    assert surveys.due_for_schedule(db, ws, "nps", NOW + timedelta(days=111)) == [a, b]
