"""Public endpoints: no API key, only a valid signed token or code (survey answers, unsubscribe,
email opens and clicks, referral landings, testimonial form and feed)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

import pydantic
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clm.api.deps import DatabaseDep
from clm.api.errors import ErrorBody
from clm.api.routing import ClmRoute, utf8_text
from clm.engage.delivery import pages, tokens, tracking
from clm.engage.delivery.unsubscribe import UNSUBSCRIBE_MAX_AGE, unsubscribe
from clm.engage.referrals import service as referrals
from clm.engage.referrals import testimonials
from clm.engage.surveys import Answer, AnswerResult
from clm.engage.surveys import answers as survey_answers
from clm.errors import ClmError

_REFUSED_PAGE: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": ErrorBody,
        "description": "Refused: a JSON error body, or on pages a page that says why",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}
router = APIRouter(prefix="/public", tags=["public"], responses=_REFUSED_PAGE, route_class=ClmRoute)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (parsed here: python-multipart is not a dependency)."""
    fields = parse_qs(utf8_text(await request.body(), "form"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status)


@router.get("/surveys/answer", response_class=HTMLResponse)
def survey_page(
    db: DatabaseDep,
    token: Annotated[str, Query()],
    score: Annotated[int | None, Query(ge=-1_000, le=1_000)] = None,
) -> HTMLResponse:
    """The answer page. With ``score`` (a one-click link from the email) it asks to confirm
    that answer and records nothing: link scanners GET every link, and must not answer for the
    person (nor use the single-use link up). The button POSTs to ``answer-form``."""
    try:
        survey = survey_answers.survey_for_token(db, token)
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    low, high = survey.scale
    if score is None:
        return _html(pages.survey_form(survey.prompt, token, range(low, high + 1)))
    if not low <= score <= high:
        return _html(pages.message("Sorry", f"Please choose a score from {low} to {high}."), 422)
    return _html(pages.confirm_score(survey.prompt, token, score))


@router.post("/surveys/answer-form", response_class=HTMLResponse)
async def survey_form_post(db: DatabaseDep, request: Request) -> HTMLResponse:
    try:
        form = await _form(request)
        answer = Answer(
            token=form.get("token", ""),
            score=int(form.get("score", "-1")),
            comment=form.get("comment") or None,
        )
        result = survey_answers.answer_survey(db, answer)
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    except ValueError:
        return _html(pages.message("Sorry", "Please choose a score."), 422)
    return _html(pages.thanks(result.score, None))


@router.post("/surveys/answer")
def survey_answer_json(db: DatabaseDep, body: Answer) -> AnswerResult:
    """The embeddable JSON endpoint: ``{"token", "score", "comment", "answers"}``."""
    return survey_answers.answer_survey(db, body)


@router.post("/surveys/comment", response_class=HTMLResponse)
async def survey_comment(db: DatabaseDep, request: Request) -> HTMLResponse:
    try:
        form = await _form(request)
        survey_answers.add_comment(db, form.get("token", ""), form.get("comment", ""))
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return _html(pages.message("Thank you", "Your comment is recorded."))


@router.get("/unsubscribe", response_class=HTMLResponse)
def unsubscribe_page(token: Annotated[str, Query()]) -> HTMLResponse:
    """The link in the email: a page with an Unsubscribe button, changing nothing (a link
    scanner's GET must not unsubscribe anyone)."""
    try:
        claims = tokens.verify(token, "unsubscribe", UNSUBSCRIBE_MAX_AGE)
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return _html(pages.confirm_unsubscribe(token, claims.subject))


@router.post("/unsubscribe", response_class=HTMLResponse)
def unsubscribe_link(db: DatabaseDep, token: Annotated[str, Query()]) -> HTMLResponse:
    """Unsubscribe: the page's button, or a mail client's one-click POST (RFC 8058,
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``)."""
    try:
        channel = unsubscribe(db, token)
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return _html(pages.message("Unsubscribed", f"You will get no more marketing by {channel}."))


# --- referral landing, testimonial form and feed ----------------------------------------------


@router.get(
    "/e/o/{token}",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "A 1×1 GIF"}},
)
def email_opened(db: DatabaseDep, token: str) -> Response:
    """The open pixel: records ``Email Opened``; always the image, never an error page."""
    with contextlib.suppress(ClmError):  # a forged pixel records nothing, shows nothing
        tracking.record_open(db, token, datetime.now(UTC))
    return Response(tracking.PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@router.get("/e/c/{token}")
def email_clicked(db: DatabaseDep, token: str, u: Annotated[str, Query()]) -> Response:
    """A tracked link: records ``Email Clicked`` and redirects to the signed URL only."""
    try:
        url = tracking.record_click(db, token, u, datetime.now(UTC))
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return RedirectResponse(url, status_code=302)


ANON_COOKIE = "clm_anonymous_id"


@router.get("/r/{code}")
def referral_landing(db: DatabaseDep, code: str, request: Request) -> Response:
    """Record the visit under an anonymous id (kept in a cookie) and go to the shop's landing
    page with ``ref`` and ``anonymous_id``, so the shop's tracking uses the same id."""
    try:
        landing = referrals.record_click(
            db,
            code,
            datetime.now(UTC),
            anonymous_id=request.cookies.get(ANON_COOKIE) or request.query_params.get("aid"),
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    response = RedirectResponse(landing.redirect_url, status_code=302)
    response.set_cookie(
        ANON_COOKIE, landing.anonymous_id, max_age=365 * 86_400, httponly=True, samesite="lax"
    )
    return response


@router.get("/testimonials/form", response_class=HTMLResponse)
def testimonial_form(token: Annotated[str, Query()]) -> HTMLResponse:
    return _html(pages.testimonial_form(token))


@router.post("/testimonials/form", response_class=HTMLResponse)
async def testimonial_form_post(db: DatabaseDep, request: Request) -> HTMLResponse:
    try:
        form = await _form(request)
        body = testimonials.TestimonialSubmit(
            token=form.get("token", ""),
            text=form.get("text", ""),
            display_name=form.get("display_name", ""),
            consent=form.get("consent") in ("on", "yes", "true", "1"),
        )
        testimonials.submit(db, body, datetime.now(UTC))
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    except pydantic.ValidationError:
        return _html(pages.message("Sorry", "Please write a few words."), 422)
    return _html(pages.message("Thank you", "Your testimonial is recorded."))


@router.post("/testimonials")
def testimonial_json(db: DatabaseDep, body: testimonials.TestimonialSubmit) -> dict[str, str]:
    """The embeddable JSON form: ``{"token", "text", "consent", ...}``."""
    saved = testimonials.submit(db, body, datetime.now(UTC))
    return {"status": saved.status}


def _feed_workspace(token: str) -> int:
    return tokens.verify(token, testimonials.FEED, 10 * 365 * tokens.DAY).workspace_id


@router.get("/testimonials/feed")
def testimonial_feed(
    db: DatabaseDep,
    token: Annotated[str, Query()],
    brand: str | None = None,
    product: str | None = None,
) -> list[testimonials.FeedItem]:
    """Approved testimonials as JSON; the signed feed token names the workspace."""
    return testimonials.feed(db, _feed_workspace(token), brand, product)


@router.get("/testimonials/embed", response_class=HTMLResponse)
def testimonial_embed(
    db: DatabaseDep,
    token: Annotated[str, Query()],
    brand: str | None = None,
    product: str | None = None,
) -> HTMLResponse:
    """Approved testimonials as an HTML snippet to embed (customer text escaped)."""
    try:
        items = testimonials.feed(db, _feed_workspace(token), brand, product)
    except ClmError as exc:
        return _html(pages.message("Sorry", exc.message), exc.status_code)
    return _html(testimonials.snippet(items))
