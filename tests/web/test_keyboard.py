"""The customer list and the overview from the keyboard alone, in Debian's Chromium against the
real app on seed_shop's four customers (Ann Lee, bob, cid, dora): Enter in a field that filters
the list keeps the caret in that field (the redrawn form used to drop it to the page's start),
a search that finds no one says so, and Escape or Cancel closes "Save as segment" back onto its
button."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import seed_shop
from tests.web.browser import Shot, console_errors, sign_in
from tests.web.servers import serving

pytestmark = pytest.mark.slow


@pytest.fixture
def shop(db: Database) -> Iterator[str]:
    workspace_id, _ = seed_shop(db)
    add_user(db, "csm@example.com", workspace_id, Role.OWNER)
    with serving(db) as url:
        yield url


def focused_id(page: Page) -> str:
    return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))


def test_enter_in_a_filter_field_keeps_the_caret_there(shop: str, browser_page: Page) -> None:
    page, url = browser_page, shop
    sign_in(page, url + "/customers", "csm@example.com")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    page.focus("#customer-search")
    page.keyboard.type("example.com")
    page.keyboard.press("Enter")
    # ann@example.com and dora@example.com; bob@shop.io and cid (no email) are not.
    expect(page.locator("#customer-count")).to_have_text("2 customers")
    assert focused_id(page) == "customer-search"
    page.keyboard.type("x")  # the next keystroke lands in the box, not on the page
    expect(page.locator("#customer-search")).to_have_value("example.comx")

    # The range form: Enter in "purchases from" applies it and stays in the field.
    page.click("#range-filters summary")
    page.focus("#range-purchases_min")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    expect(page).to_have_url(url + "/customers?q=example.com&purchases_min=2")
    # dora bought twice (d1, d2); ann once.
    expect(page.locator("#customer-count")).to_have_text("1 customer")
    assert focused_id(page) == "range-purchases_min"

    # The overview's date range: Enter in "From" redraws the charts, the caret stays.
    page.goto(url + "/overview")
    expect(page.locator("#stat-customers")).to_have_text("4")
    expect(page.locator("#chart-stages canvas")).to_be_visible()  # the range filled in
    page.focus("#range-since")
    page.keyboard.type("01022026")  # mm/dd/yyyy in Chromium's en-US date field
    page.keyboard.press("Enter")
    expect(page).to_have_url(url + "/overview?since=2026-01-02")
    expect(page.locator("#chart-stages")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert focused_id(page) == "range-since"
    assert console_errors(page) == []


def test_a_search_that_finds_no_one_says_so(shop: str, browser_page: Page) -> None:
    page, url = browser_page, shop
    sign_in(page, url + "/customers?q=nobody-here", "csm@example.com")
    expect(page.locator("#customer-count")).to_have_text("0 customers")
    expect(page.locator("#customer-table-empty")).to_have_text("No customer matches these filters.")
    # A page past the end (an old link) says where the list ends: 4 customers, 1 page of 50.
    page.goto(url + "/customers?page=3")
    expect(page.locator("#customer-table-empty")).to_have_text(
        "Nothing on page 3: the list has 1 page."
    )
    page.goto(url + "/customers")
    expect(page.locator("#customer-table tbody tr")).to_have_count(4)
    expect(page.locator("#customer-table-empty")).to_have_count(0)
    assert console_errors(page) == []


def test_escape_or_cancel_closes_save_as_segment_onto_its_button(
    shop: str, browser_page: Page
) -> None:
    page, url = browser_page, shop
    sign_in(page, url + "/customers?q=example.com", "csm@example.com")
    expect(page.locator("#customer-count")).to_have_text("2 customers")
    page.focus("#save-segment")
    page.keyboard.press("Enter")
    expect(page.locator("#segment-name")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#save-segment-form")).to_have_count(0)
    expect(page.locator("#save-segment")).to_be_focused()
    # Open again (the name field has the caret again); Escape on the Cancel button closes.
    page.keyboard.press("Enter")
    expect(page.locator("#segment-name")).to_be_focused()
    page.keyboard.press("Tab")  # description
    page.keyboard.press("Tab")  # Save
    page.keyboard.press("Tab")  # Cancel
    expect(page.locator("#save-segment-cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#save-segment")).to_be_focused()
    # And Enter on Cancel: closed, the keyboard back on the button.
    page.keyboard.press("Enter")
    expect(page.locator("#segment-name")).to_be_focused()
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.locator("#save-segment-cancel")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#save-segment-form")).to_have_count(0)
    expect(page.locator("#save-segment")).to_be_focused()
    assert console_errors(page) == []


def focused_text(page: Page) -> str:
    """The tag and text of the element that has the keyboard, e.g. ``H1 Customers``."""
    return str(
        page.evaluate(
            "document.activeElement ? document.activeElement.tagName + ' '"
            " + document.activeElement.textContent.trim() : ''"
        )
    )


def test_a_new_page_puts_the_keyboard_on_its_heading(
    shop: str, browser_page: Page, shot: Shot
) -> None:
    """Enter on a navigation link (or on a link that goes with the old page, or Back) lands on
    the new page's heading: a screen reader reads it, the next Tab goes into the page. A tab
    inside a page keeps the keyboard on the tab row."""
    page, url = browser_page, shop
    sign_in(page, url + "/overview", "csm@example.com")
    expect(page.locator("#stat-customers")).to_have_text("4")
    page.focus("header nav a[href='/customers']")
    page.keyboard.press("Enter")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    expect(page.locator("main h1")).to_be_focused()
    assert focused_text(page) == "H1 Customers"
    shot("keyboard-new-page-heading")
    # The next Tab goes into the page (the search box is its first field), not the nav.
    page.keyboard.press("Tab")
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")

    # A customer's link goes with the list: the keyboard lands on the customer's heading.
    page.focus("#customer-table tbody a >> nth=0")
    page.keyboard.press("Enter")
    expect(page.locator("#customer-title")).to_be_visible()
    expect(page.locator("#customer-title")).to_be_focused()

    # Back: the list's heading again.
    page.go_back()
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    expect(page.locator("main h1")).to_be_focused()
    assert focused_text(page) == "H1 Customers"

    # A tab of Settings is a part of the page: the keyboard stays on the tab row.
    page.focus("header nav a[href='/settings']")
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_be_focused()
    assert focused_text(page) == "H1 Settings"
    page.focus("#settings .tabs a[href='/settings/health']")
    page.keyboard.press("Enter")
    expect(page).to_have_url(url + "/settings/health")
    expect(page.locator("#scorecard-form")).to_be_visible()
    assert focused_text(page) == "A Health scorecard"
    assert console_errors(page) == []


def test_arrow_keys_on_a_filter_select_ask_once_the_choice_is_made(
    shop: str, browser_page: Page, shot: Shot
) -> None:
    """Chromium fires "change" for every arrow key on a closed select: the Stage and Health
    filters used to ask for the list (and add a history entry) at each option passed. Now the
    choice applies on Enter, on leaving the field or with Search; a mouse pick applies at once.
    Each commit waits for its own answer, by which time a request of an arrow key before it
    would have been sent."""
    page, url = browser_page, shop
    sign_in(page, url + "/customers", "csm@example.com")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/customer-list?" in r.url else None)

    def answered() -> Any:
        return page.expect_response(lambda r: "/customer-list?" in r.url)

    expect(page.locator("#filter-stage option").nth(3)).to_be_attached()  # the stages came
    page.focus("#filter-stage")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    chosen = page.eval_on_selector("#filter-stage", "s => s.value")
    assert chosen and page.url == url + "/customers"  # the third stage on show, not applied
    with answered():
        page.keyboard.press("Enter")
    expect(page).to_have_url(f"{url}/customers?stage={chosen}")
    assert len(asked) == 1 and f"stage={chosen}" in asked[0], asked
    expect(page.locator("#filter-stage")).to_be_focused()

    # Health: two steps down, then Tab away applies "happy but at risk" once.
    page.focus("#filter-health")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    with answered():
        page.keyboard.press("Tab")
    expect(page).to_have_url(f"{url}/customers?stage={chosen}&health_state=at_risk")
    assert len(asked) == 2, asked

    # Escape after moving puts back the filter in force, and leaving then asks nothing.
    page.focus("#filter-health")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    expect(page.locator("#filter-health")).to_have_value("at_risk")
    page.keyboard.press("Tab")
    expect(page).to_have_url(f"{url}/customers?stage={chosen}&health_state=at_risk")

    # A choice moved to and sent with Search: one request with it.
    page.goto(url + "/customers")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    asked.clear()
    page.focus("#filter-health")
    page.keyboard.press("ArrowDown")  # happy and stable
    with answered():
        page.click("#customer-toolbar-search")
    expect(page).to_have_url(url + "/customers?health_state=happy")
    expect(page.locator("#customer-count")).to_have_text("2 customers")
    assert len(asked) == 1, asked

    # The mouse: a pick from the list applies at once.
    page.select_option("#filter-health", "")
    expect(page).to_have_url(url + "/customers")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    shot("keyboard-filter-select")
    assert console_errors(page) == []

    # The overview's "Points" select likewise: an arrow shows "monthly", Enter redraws.
    page.goto(url + "/overview")
    expect(page.locator("#stat-customers")).to_have_text("4")
    grain = page.locator("#range select[name=grain]")
    grain.focus()
    page.keyboard.press("ArrowDown")
    expect(grain).to_have_value("month")
    assert page.url == url + "/overview"
    page.keyboard.press("Enter")
    expect(page).to_have_url(url + "/overview?grain=month")
    expect(grain).to_be_focused()
    assert console_errors(page) == []
