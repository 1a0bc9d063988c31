"""Editing a segment's conditions in Debian's Chromium, by keyboard: rows of field, operator
and value; the member count previewed as you type (a mistake shown at its row without a
console error); saving changes the members to what ``seed_shop`` says they are; a save the
API refuses shows its 422 at the row; a segment a playbook triggers on cannot be renamed or
deleted, and the page says why. Screenshots at 1280 and 400 px."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.lifecycle.conditions import Condition
from clm.lifecycle.saved_segments import SegmentCreate, create_segment, get_segment
from clm.store import workspaces as ws
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import seed_shop
from tests.web.browser import Shot, refused_once, sign_in
from tests.web.servers import serving

PLAYBOOK = (
    "name: lapsing\ntrigger:\n  type: segment_entered\n  segment: Lapsing\n"
    "steps:\n  - id: note\n    type: task\n    title: Call them\n"
)


@pytest.fixture
def editor_site(db: Database) -> Iterator[tuple[str, Database, int, dict[str, int], int]]:
    workspace_id, ids = seed_shop(db)
    add_user(db, "growth@example.com", workspace_id, Role.MARKETER)
    big = create_segment(db, workspace_id, SegmentCreate(
        name="Big spenders", conditions=[Condition(attr="revenue", op="gte", value=40)]
    ), "test")  # fmt: skip
    lapsing = create_segment(db, workspace_id, SegmentCreate(
        name="Lapsing", conditions=[Condition(attr="last_seen_days", op="gt", value=30)]
    ), "test")  # fmt: skip
    with db.transaction() as session:
        secret = ws.issue_key(session, "secret", workspace_id).key
    with serving(db) as url:
        saved = httpx.post(f"{url}/api/v1/engage/playbooks/source", json={"yaml": PLAYBOOK},
                           headers={"Authorization": f"Bearer {secret}"}, timeout=60)  # fmt: skip
        assert saved.status_code == 201, saved.text
        yield url, db, workspace_id, {**ids, "big": big.id}, lapsing.id


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_edit_conditions_with_a_live_count_field_errors_and_the_rename_rule(
    editor_site: tuple[str, Database, int, dict[str, int], int],
    browser_page: Page,
    shot: Shot,
    width: int,
) -> None:
    url, db, workspace_id, ids, lapsing = editor_site
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, f"{url}/segments/{ids['big']}", "growth@example.com")
    # seed_shop's revenue: ann 30, bob 80, dora 45 (2 orders), cid none.
    expect(page.locator("#segment-size")).to_have_text("2")
    page.focus("#edit-segment")
    page.keyboard.press("Enter")
    assert "edit=1" in page.url  # the editor is a URL too: the back button closes it
    expect(page.locator("#cond-0-attr")).to_have_value("revenue")
    expect(page.locator("#cond-0-value")).to_have_value("40")
    preview = page.locator("#segment-preview")
    expect(preview).to_contain_text("2 customers would match now")
    page.focus("#add-condition")
    page.keyboard.press("Enter")
    expect(page.locator("#cond-1-attr")).to_be_focused()
    page.select_option("#cond-1-attr", "purchases")
    page.select_option("#cond-1-op", "gte")
    page.focus("#cond-1-value")
    page.keyboard.type("two")
    # The preview's own field error, at its row: no request failed, so no console error.
    expect(page.locator("#cond-1-error")).to_have_text("purchases is compared with a number")
    expect(page.locator("#cond-1-value")).to_have_attribute("aria-invalid", "true")
    shot("segment-editor-error")
    page.fill("#cond-1-value", "2")
    expect(preview).to_contain_text("1 customer would match now")  # dora only
    expect(page.locator("#cond-1-error")).to_have_count(0)
    shot("segment-editor")
    page.focus("#save-segment-edit")
    page.keyboard.press("Enter")
    expect(page.locator("#segment-editor")).to_have_count(0)
    expect(page.locator("#segment-size")).to_have_text("1")
    expect(page.locator("#member-count")).to_have_text("1 member")
    expect(page.locator(".conditions")).to_contain_text("purchases ≥ 2")
    members = page.locator("#member-table tbody tr td:first-child a")
    assert members.evaluate_all("a => a.map(x => x.href)")[0].endswith(f"/{ids['dora']}")
    stored = get_segment(db, workspace_id, ids["big"])
    assert [c.model_dump() for c in stored.conditions] == [
        {"attr": "revenue", "op": "gte", "value": 40},
        {"attr": "purchases", "op": "gte", "value": 2},
    ]
    # A save the API refuses (the preview warned too): its 422, shown at the row.
    page.click("#edit-segment")
    page.select_option("#cond-1-attr", "traits.")
    page.fill("#cond-1-trait", "vip")
    page.select_option("#cond-1-op", "gt")
    page.fill("#cond-1-value", "true")
    expect(page.locator("#cond-1-error")).to_have_text("true/false cannot be ordered")
    page.click("#save-segment-edit")
    expect(page.locator("#segment-refused")).to_contain_text("Invalid segment conditions")
    expect(page.locator("#cond-1-error")).to_have_text("true/false cannot be ordered")
    refused_once(page)  # the PATCH, on purpose
    page.click("#cancel-segment-edit")
    expect(page.locator("#segment-editor")).to_have_count(0)
    assert len(get_segment(db, workspace_id, ids["big"]).conditions) == 2  # unchanged
    # The playbook's segment: the name is locked, the page says by whom; delete is off.
    page.goto(f"{url}/segments/{lapsing}")
    expect(page.locator("#segment-used-by")).to_contain_text("Playbook lapsing triggers on it")
    expect(page.locator("#delete-segment")).to_be_disabled()
    page.click("#edit-segment")
    expect(page.locator("#edit-segment-name")).to_be_disabled()
    expect(page.locator("#rename-locked")).to_contain_text("Playbook lapsing triggers on")
    page.fill("#cond-0-value", "60")
    expect(preview).to_contain_text("1 customer would match now")  # ann (400 days)
    shot("segment-editor-locked")
    page.click("#save-segment-edit")
    expect(page.locator(".conditions")).to_contain_text("last seen more than 60 days ago")
    assert get_segment(db, workspace_id, lapsing).name == "Lapsing"
    shot("segment-after-edit")


@pytest.mark.slow
def test_arrow_keys_on_a_condition_select_keep_the_value_and_preview_once(
    editor_site: tuple[str, Database, int, dict[str, int], int],
    browser_page: Page,
    shot: Shot,
) -> None:
    """Chromium fires "change" for every arrow key on a closed select: arrows through a
    condition's fields dropped its value at the first field of another kind (revenue >= 40
    passing "Last seen on (day)" came back empty), and each choice passed was previewed. Now
    arrows only move the choice, Escape puts back the one in force, Enter applies it with one
    preview, and a mouse pick applies at once."""
    url, _, _, ids, _ = editor_site
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, f"{url}/segments/{ids['big']}?edit=1", "growth@example.com")
    preview = page.locator("#segment-preview")
    expect(preview).to_contain_text("2 customers would match now")
    asked: list[str] = []

    def previewed(request: Any) -> None:
        if "/segments/preview" in request.url:
            asked.append(request.post_data or "")

    page.on("request", previewed)

    def answered() -> Any:
        return page.expect_response(lambda r: "/segments/preview" in r.url)

    field, value = page.locator("#cond-0-attr"), page.locator("#cond-0-value")
    field.focus()
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    expect(field).to_have_value("last_seen_date")
    for _ in range(3):
        page.keyboard.press("ArrowUp")
    expect(field).to_have_value("revenue")
    expect(value).to_have_value("40")  # was dropped on the way
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    expect(field).to_have_value("revenue")
    expect(value).to_have_value("40")
    for key in ("ArrowUp", "ArrowDown", "ArrowDown"):  # CLV, revenue, purchases
        page.keyboard.press(key)
    expect(field).to_have_value("purchases")
    with answered():
        page.keyboard.press("Enter")
    expect(value).to_have_value("40")  # a number field like revenue: the value kept
    expect(preview).to_contain_text("0 customers would match now")
    assert len(asked) == 1 and '"attr":"purchases"' in asked[0], asked
    expect(field).to_be_focused()
    # The mouse: a pick applies at once (one purchase or more: ann, bob, dora).
    with answered():
        page.select_option("#cond-0-op", "gt")
    page.fill("#cond-0-value", "0")
    expect(preview).to_contain_text("3 customers would match now")
    assert '"op":"gt"' in asked[1], asked
    shot("segment-editor-selects")
