"""The playbook form beside the YAML editor, in Debian's Chromium, by keyboard: the starter
playbook opened as fields; the trigger changed to entering a saved segment, a send step moved
to SMS, a wait added; the YAML holds every change; a mistake made in the form is named by the
same check with its YAML line, and "line N" opens the text there; the saved playbook is what
the form said. No console error; screenshots at 1280 and 400 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.engage.playbooks import service as pb
from clm.lifecycle.conditions import Condition
from clm.lifecycle.saved_segments import SegmentCreate, create_segment
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.conftest import make_tenant
from tests.web.browser import Shot, sign_in
from tests.web.servers import serving


@pytest.fixture
def playbook_site(db: Database) -> Iterator[tuple[str, Database, int]]:
    tenant = make_tenant(db, "books")
    add_user(db, "growth@example.com", tenant.id, Role.MARKETER)
    create_segment(db, tenant.id, SegmentCreate(
        name="Lapsing", conditions=[Condition(attr="last_seen_days", op="gt", value=30)]
    ), "test")  # fmt: skip
    with serving(db) as url:
        yield url, db, tenant.id


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_the_form_and_the_yaml_edit_one_playbook_with_one_check(
    playbook_site: tuple[str, Database, int], browser_page: Page, shot: Shot, width: int
) -> None:
    url, db, workspace_id = playbook_site
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})

    def yaml_text() -> str:
        page.click("#edit-as-yaml")
        text = page.input_value("#playbook-yaml")
        return text

    sign_in(page, url + "/engagement/new", "growth@example.com")
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 4 steps.")
    page.focus("#edit-as-form")
    page.keyboard.press("Enter")
    expect(page.locator("#pb-name")).to_have_value("check-in")
    expect(page.locator("#pb-trigger-type")).to_have_value("health_changed")
    expect(page.locator("#pb-trigger-to")).to_have_value("at_risk")
    # Trigger: entering the saved segment; step 1 by SMS; a wait added at the end.
    page.focus("#pb-trigger-type")
    page.select_option("#pb-trigger-type", "segment_entered")
    page.select_option("#pb-trigger-segment", "Lapsing")
    page.select_option("#pb-step-0-channel", "sms")
    page.focus("#pb-add-step")
    page.keyboard.press("Enter")
    expect(page.locator("#pb-step-4-id")).to_be_focused()
    page.fill("#pb-step-4-days", "")
    page.focus("#pb-step-4-days")
    page.keyboard.type("5")
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 5 steps.")
    shot("playbook-form")
    text = yaml_text()
    assert "trigger:\n  type: segment_entered\n  segment: Lapsing\n" in text
    assert "    channel: sms\n" in text
    assert "  - id: step-5\n    type: wait\n    days: 5\n" in text
    # A mistake made in the form: the check names it with its line in the YAML.
    page.click("#edit-as-form")
    page.fill("#pb-holdout", "0.9")
    errors = page.locator("#playbook-errors li")
    expect(errors).to_have_count(1)
    expect(errors).to_contain_text("less than or equal to 0.5")
    expect(page.locator("#save-playbook")).to_be_disabled()
    shot("playbook-form-error")
    line = int(errors.locator("button").inner_text().split()[1])
    errors.locator("button").click()  # "line N" opens the YAML there
    expect(page.locator("#playbook-yaml")).to_be_focused()
    text = page.input_value("#playbook-yaml")
    assert text.splitlines()[line - 1] == "holdout: 0.9"
    page.click("#edit-as-form")
    page.fill("#pb-holdout", "0.2")
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 5 steps.")
    page.click("#save-playbook")
    expect(page).to_have_url(url + "/engagement/playbooks/check-in")
    [saved] = [p for p in pb.list_playbooks(db, workspace_id) if p.name == "check-in"]
    definition = saved.definition
    assert definition["trigger"]["type"] == "segment_entered"
    assert definition["trigger"]["segment"] == "Lapsing"
    assert definition["holdout"] == 0.2
    assert definition["steps"][0]["channel"] == "sms"
    assert (definition["steps"][4]["type"], definition["steps"][4]["days"]) == ("wait", 5)
    shot("playbook-saved-from-form")


@pytest.mark.slow
def test_a_form_edit_keeps_the_comments_typed_in_the_yaml(
    playbook_site: tuple[str, Database, int], browser_page: Page, shot: Shot
) -> None:
    """The person's comments survive a form edit: typed into the YAML, one change in the form
    (step 1 by SMS), back to the YAML: the comments are there, the channel changed, the check
    still passes."""
    from tests.engage.test_console import COMMENTED

    url, _, _ = playbook_site
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, url + "/engagement/new", "growth@example.com")
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 4 steps.")
    page.fill("#playbook-yaml", COMMENTED)
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 2 steps.")
    page.click("#edit-as-form")
    page.select_option("#pb-step-0-channel", "sms")
    # the server writes the change into the text: wait for its answer, then for the check
    expect(page.locator("#playbook-yaml")).to_have_value(re.compile("channel: sms"))
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 2 steps.")
    page.click("#edit-as-yaml")
    text = page.input_value("#playbook-yaml")
    comments = [line for line in COMMENTED.splitlines() if "#" in line]
    assert len(comments) == 5 and all(line in text.splitlines() for line in comments), text
    assert "      text: We noticed you have not been back.\n    channel: sms\n" in text
    assert text.replace("    channel: sms\n", "") == COMMENTED  # nothing else moved
    shot("playbook-form-comments")


@pytest.mark.slow
def test_saved_yaml_reopens_with_its_comments(
    playbook_site: tuple[str, Database, int], browser_page: Page, shot: Shot
) -> None:
    """Commented YAML typed and saved, the page reloaded: the editor shows the text as typed;
    a form edit of it (step 1 by SMS) saved as version 2 and reloaded keeps the comments too."""
    from tests.engage.test_console import COMMENTED

    url, db, workspace_id = playbook_site
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, url + "/engagement/new", "growth@example.com")
    page.fill("#playbook-yaml", COMMENTED)
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 2 steps.")
    page.click("#save-playbook")
    expect(page).to_have_url(url + "/engagement/playbooks/check-in")
    page.goto(url + "/engagement/playbooks/check-in/edit")
    page.reload()
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 2 steps.")
    assert page.input_value("#playbook-yaml") == COMMENTED
    page.click("#edit-as-form")
    page.select_option("#pb-step-0-channel", "sms")
    expected = COMMENTED.replace(
        "not been back.\n", "not been back.\n    channel: sms\n"
    )  # the one line the form adds, under the step's content
    expect(page.locator("#playbook-yaml")).to_have_value(expected)
    page.click("#save-playbook")
    expect(page).to_have_url(url + "/engagement/playbooks/check-in")
    page.goto(url + "/engagement/playbooks/check-in/edit")
    page.reload()
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 2 steps.")
    assert page.input_value("#playbook-yaml") == expected
    shot("playbook-reopened-with-comments")
    [saved] = [p for p in pb.list_playbooks(db, workspace_id) if p.name == "check-in"]
    assert (saved.version, saved.definition["steps"][0]["channel"]) == (2, "sms")


@pytest.mark.slow
def test_arrow_keys_on_the_form_selects_change_the_playbook_once_the_choice_is_made(
    playbook_site: tuple[str, Database, int], browser_page: Page, shot: Shot
) -> None:
    """Chromium fires "change" for every arrow key on a closed select: each was a POST that
    wrote the draft into the YAML, and passing a trigger type dropped the fields of the one
    left (the starter's "to: at_risk" gone on the way back). Now arrows only move the choice,
    Escape puts back the one in force, Enter or leaving the field applies it once, and a mouse
    pick applies at once. Each commit waits for its own answer, by which time a request of an
    arrow key before it would have been sent."""
    url, _, _ = playbook_site
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, url + "/engagement/new", "growth@example.com")
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 4 steps.")
    page.click("#edit-as-form")
    written: list[str] = []

    def sent(request: Any) -> None:
        if "/playbooks/yaml" in request.url:
            written.append(request.post_data or "")

    page.on("request", sent)

    def answered() -> Any:
        return page.expect_response(lambda r: "/playbooks/yaml" in r.url)

    # Through three trigger types and back with Escape: the health trigger and its state kept.
    kind = page.locator("#pb-trigger-type")
    kind.focus()
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    expect(kind).to_have_value("schedule")
    expect(page.locator("#pb-trigger-to")).to_have_value("at_risk")  # not applied yet
    page.keyboard.press("Escape")
    expect(kind).to_have_value("health_changed")
    # Step 1's channel: three arrows, Tab away writes the one shown, once.
    channel = page.locator("#pb-step-0-channel")
    channel.focus()
    for key in ("ArrowDown", "ArrowDown", "ArrowUp"):
        page.keyboard.press(key)
    chosen = channel.input_value()
    assert chosen in ("email", "sms", "webhook")
    with answered():
        page.keyboard.press("Tab")
    assert len(written) == 1 and f'"channel":"{chosen}"' in written[0], written
    expect(page.locator("#playbook-yaml")).to_have_value(re.compile(f"channel: {chosen}"))
    # Three trigger types down and Enter: one write, the schedule's field in view.
    kind.focus()
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    with answered():
        page.keyboard.press("Enter")
    expect(page.locator("#pb-trigger-every_days")).to_be_visible()
    assert len(written) == 2 and '"type":"schedule"' in written[1], written
    expect(kind).to_be_focused()
    # The mouse: a pick applies at once.
    with answered():
        page.select_option("#pb-trigger-type", "event")
    expect(page.locator("#pb-trigger-event")).to_be_visible()
    assert len(written) == 3, written
    page.fill("#pb-trigger-event", "Signed Up")
    expect(page.locator("#check-state")).to_contain_text("Valid: check-in, 4 steps.")
    shot("playbook-form-selects")
