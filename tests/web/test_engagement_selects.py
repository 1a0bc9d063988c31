"""The engagement pages' selects from the keyboard, in Debian's Chromium against the real app:
Chromium fires "change" for every arrow key on a closed select, and the survey results' grain
and tone, the task inbox's status and owner and a playbook's journey state each asked the API
(and added a history entry) at every option passed. Now, as on the customer list, the choice
applies on Enter or on leaving the field, and a mouse pick applies at once.

Each commit waits for its own answer, by which time a request of an arrow key before it would
have been sent, so a count of one after it means the arrows asked nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Tenant
from tests.web.browser import Shot, console_errors, sign_in_with_key
from tests.web.test_engagement import engaged  # noqa: F401 - the fixture
from tests.web.test_pages import shop  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def counting(page: Page, part: str) -> tuple[list[str], Callable[[], Any]]:
    """The API requests whose address holds ``part``, and a wait for the next answer to one."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if part in r.url else None)
    return asked, lambda: page.expect_response(lambda r: part in r.url)


def test_arrow_keys_on_the_engagement_selects_ask_once_the_choice_is_made(
    engaged: tuple[str, Tenant],  # noqa: F811
    browser_page: Page,
    shot: Shot,
) -> None:
    url, tenant = engaged
    page = browser_page
    base = url + "/engagement/surveys/nps"
    sign_in_with_key(page, base, tenant.secret_key)
    expect(page.locator("#survey-value")).to_have_text("+16.67")

    # The survey's grain: month -> week -> quarter shown, nothing asked; Enter asks once.
    results, answered = counting(page, "/engage/surveys/nps/results")
    grain = page.locator("#survey-grain")
    grain.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(grain).to_have_value("quarter")
    assert page.url == base
    with answered():
        page.keyboard.press("Enter")
    expect(page).to_have_url(base + "?granularity=quarter")
    assert len(results) == 1 and "granularity=quarter" in results[0], results
    expect(grain).to_be_focused()

    # The comments' tone: three steps down to "positive", Tab away asks once.
    comments, answered = counting(page, "/engage/surveys/nps/comments")
    tone = page.locator("#comment-tone")
    tone.focus()
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    expect(tone).to_have_value("positive")
    assert page.url == base + "?granularity=quarter"
    with answered():
        page.keyboard.press("Tab")
    expect(page).to_have_url(base + "?granularity=quarter&tone=positive")
    expect(page.locator("#survey-comments")).to_contain_text("No comments with a positive tone.")
    assert len(comments) == 1 and "tone=positive" in comments[0], comments
    # Escape after moving puts back the tone in force; leaving then asks nothing.
    tone.focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Escape")
    expect(tone).to_have_value("positive")
    # The mouse: a pick from the list applies at once (the one comment is negative).
    with answered():
        page.select_option("#comment-tone", "negative")
    expect(page).to_have_url(base + "?granularity=quarter&tone=negative")
    expect(page.locator("#survey-comments")).to_contain_text("Terrible support")
    assert len(comments) == 2 and "tone=negative" in comments[1], comments
    shot("engagement-selects-surveys")

    # The task inbox: status open -> completed -> open -> completed, Enter asks once.
    page.goto(url + "/engagement/tasks")
    tasks = page.locator("#tasks tbody tr")
    expect(tasks).to_have_count(2)
    asked, answered = counting(page, "/engage/tasks?")
    status = page.locator("#task-status")
    status.focus()
    for key in ("ArrowDown", "ArrowUp", "ArrowDown"):
        page.keyboard.press(key)
    expect(status).to_have_value("done")
    assert page.url == url + "/engagement/tasks"
    with answered():
        page.keyboard.press("Enter")
    expect(page).to_have_url(url + "/engagement/tasks?status=done")
    expect(page.locator("#engagement")).to_contain_text("No completed tasks.")
    assert len(asked) == 1 and "status=done" in asked[0], asked
    with answered():
        page.select_option("#task-status", "open")  # the mouse
    expect(tasks).to_have_count(2)
    assert len(asked) == 2, asked
    # The owner: anyone -> unassigned -> anyone -> unassigned, Enter asks once.
    owner = page.locator("#task-owner")
    owner.focus()
    for key in ("ArrowDown", "ArrowUp", "ArrowDown"):
        page.keyboard.press(key)
    with answered():
        page.keyboard.press("Enter")
    expect(page).to_have_url(url + "/engagement/tasks?owner=")
    expect(tasks).to_have_count(2)
    assert len(asked) == 3 and asked[2].endswith("owner="), asked
    shot("engagement-selects-tasks")

    # A playbook's journeys: three steps down to "failed", Enter asks once.
    playbook = url + "/engagement/playbooks/upgraded"
    page.goto(playbook)
    journeys = page.locator("#journey-table tbody tr")
    expect(journeys).to_have_count(2)
    asked, answered = counting(page, "/engage/playbooks/upgraded/journeys")
    state = page.locator("#journey-state")
    state.focus()
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    expect(state).to_have_value("failed")
    assert page.url == playbook
    with answered():
        page.keyboard.press("Enter")
    expect(page).to_have_url(playbook + "?state=failed")
    expect(page.locator("#journeys")).to_contain_text("No journeys here (failed).")
    assert len(asked) == 1 and "state=failed" in asked[0], asked
    with answered():
        page.select_option("#journey-state", "all")  # the mouse
    expect(journeys).to_have_count(2)
    assert len(asked) == 2 and "state=all" in asked[1], asked
    shot("engagement-selects-journeys")
    assert console_errors(page) == []
