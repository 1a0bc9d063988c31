"""Public endpoints: no API key, only a valid signed token (survey answers, unsubscribe)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from clm.api.deps import DatabaseDep
from clm.engage import pages, surveys
from clm.engage.survey_schemas import Answer, AnswerResult
from clm.engage.unsubscribe import unsubscribe
from clm.errors import ClmError

router = APIRouter(prefix="/public", tags=["public"])


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (parsed here: python-multipart is not a dependency)."""
    fields = parse_qs((await request.body()).decode(), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status)


@router.get("/surveys/answer", response_class=HTMLResponse)
def survey_page(
    db: DatabaseDep, token: Annotated[str, Query()], score: Annotated[int | None, Query()] = None
) -> HTMLResponse:
    """The answer page; with ``score`` (a one-click link from the email) it records at once."""
    try:
        if score is None:
            survey = surveys.survey_for_token(db, token)
            low, high = survey.scale
            return _html(pages.survey_form(survey.prompt, token, range(low, high + 1)))
        result = surveys.answer_survey(db, Answer(token=token, score=score))
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return _html(pages.thanks(result.score, result.comment_token))


@router.post("/surveys/answer-form", response_class=HTMLResponse)
async def survey_form_post(db: DatabaseDep, request: Request) -> HTMLResponse:
    form = await _form(request)
    try:
        answer = Answer(
            token=form.get("token", ""),
            score=int(form.get("score", "-1")),
            comment=form.get("comment") or None,
        )
        result = surveys.answer_survey(db, answer)
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    except ValueError:
        return _html(pages.message("Sorry", "Please choose a score."), 422)
    return _html(pages.thanks(result.score, None))


@router.post("/surveys/answer")
def survey_answer_json(db: DatabaseDep, body: Answer) -> AnswerResult:
    """The embeddable JSON endpoint: ``{"token", "score", "comment", "answers"}``."""
    return surveys.answer_survey(db, body)


@router.post("/surveys/comment", response_class=HTMLResponse)
async def survey_comment(db: DatabaseDep, request: Request) -> HTMLResponse:
    form = await _form(request)
    try:
        surveys.add_comment(db, form.get("token", ""), form.get("comment", ""))
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return _html(pages.message("Thank you", "Your comment is recorded."))


@router.get("/unsubscribe", response_class=HTMLResponse)
@router.post("/unsubscribe", response_class=HTMLResponse)
def unsubscribe_link(db: DatabaseDep, token: Annotated[str, Query()]) -> HTMLResponse:
    """One-click unsubscribe: GET from the link, POST from mail clients (RFC 8058)."""
    try:
        channel = unsubscribe(db, token)
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return _html(pages.message("Unsubscribed", f"You will get no more marketing by {channel}."))
