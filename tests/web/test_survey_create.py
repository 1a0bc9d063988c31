"""Creating a survey in Debian's Chromium, by keyboard: Engagement > Surveys > New survey; the
API's 422 shown at each field it names; the survey saved as typed (kind, question, channel),
its page showing the link customers get; a key in use refused at the key field, never
replaced. No other console error; screenshots at 1280 and 400 px."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.config import get_settings
from clm.engage.surveys import service as surveys
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.conftest import make_tenant
from tests.web.browser import Shot, refused_once, sign_in
from tests.web.servers import serving


@pytest.fixture
def survey_site(db: Database) -> Iterator[tuple[str, Database, int]]:
    tenant = make_tenant(db, "surveys")
    add_user(db, "growth@example.com", tenant.id, Role.MARKETER)
    with serving(db) as url:
        yield url, db, tenant.id


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_create_a_survey_by_keyboard_with_field_errors_and_see_its_link(
    survey_site: tuple[str, Database, int], browser_page: Page, shot: Shot, width: int
) -> None:
    url, db, workspace_id = survey_site
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, url + "/engagement/surveys", "growth@example.com")
    expect(page.locator("#engagement")).to_contain_text("No surveys yet")
    page.focus("#new-survey-button")
    page.keyboard.press("Enter")
    expect(page.locator("#survey-key")).to_be_focused()
    assert page.url.endswith("/engagement/surveys?create=1")
    # Two mistakes at once: each shown at its own field by the API's 422.
    page.keyboard.type("After Ticket!")
    page.select_option("#survey-type", "csat")
    page.fill("#survey-subject", "")
    page.press("#survey-key", "Enter")
    expect(page.locator("#survey-key-error")).to_have_text(
        "use lower-case letters, digits, - and _, starting with a letter or digit"
    )
    expect(page.locator("#survey-subject-error")).to_contain_text("at least 1 character")
    expect(page.locator("#survey-key")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#survey-key")).to_be_focused()  # the first field at fault
    refused_once(page)  # the POST, on purpose
    shot("survey-create-error")
    assert surveys.list_surveys(db, workspace_id) == []
    page.fill("#survey-key", "csat-after-ticket")
    page.focus("#survey-question")
    page.keyboard.type("How did we do with your ticket?")
    page.focus("#survey-channel-email")
    page.keyboard.press("ArrowDown")  # the radio group moves to SMS
    expect(page.locator("#survey-channel-sms")).to_be_checked()
    expect(page.locator("#survey-subject")).to_have_count(0)  # SMS has no subject
    shot("survey-create")
    page.press("#survey-question", "Enter")
    expect(page.locator("#survey-created")).to_have_text("Survey “csat-after-ticket” created.")
    assert page.url.endswith("/engagement/surveys/csat-after-ticket?created=1")
    public = get_settings().public_url.rstrip("/")
    expect(page.locator("#survey-link")).to_have_text(f"{public}/public/surveys/answer?token=…")
    expect(page.locator("#survey-question-shown")).to_have_text("How did we do with your ticket?")
    expect(page.locator("#no-answers")).to_be_visible()
    [saved] = surveys.list_surveys(db, workspace_id)
    assert (saved.key, saved.type, saved.definition["channel"], saved.definition["question"]) == (
        "csat-after-ticket", "csat", "sms", "How did we do with your ticket?",
    )  # fmt: skip
    shot("survey-created")
    # The same key again: refused at the key field; the first survey is kept as it was.
    page.click("#new-survey-button")
    page.fill("#survey-key", "csat-after-ticket")
    page.fill("#survey-question", "Something else?")
    page.click("#create-survey")
    expect(page.locator("#survey-key-error")).to_contain_text("exists already")
    refused_once(page, 409)  # the POST, on purpose
    [kept] = surveys.list_surveys(db, workspace_id)
    assert kept.definition["question"] == "How did we do with your ticket?"
