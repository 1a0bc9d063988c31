"""A customer-success manager's morning in Debian's Chromium, against the real app on a seeded
workspace: sign in, overview, a stage count into the customer list, the at-risk list, a
customer 360 with a note added, the back button -- no console error on any page, and a
screenshot of every page in ``tests/web/screenshots/`` (look at them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import seed_shop
from tests.web.browser import Shot, sign_in
from tests.web.servers import serving


@pytest.fixture
def shop(db: Database) -> Iterator[tuple[str, dict[str, int]]]:
    """The seeded shop served over each backend (SQLite; PostgreSQL in its own schema)."""
    workspace_id, ids = seed_shop(db)
    add_user(db, "csm@example.com", workspace_id, Role.CUSTOMER_SUCCESS)
    with serving(db) as url:
        yield url, ids


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_sign_in_overview_list_at_risk_and_a_customer_360(
    shop: tuple[str, dict[str, int]], browser_page: Page, shot: Shot, width: int
) -> None:
    url, ids = shop
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url + "/customers")  # a deep link asks to sign in first, then opens
    expect(page.locator("#signin-form")).to_be_visible()
    shot("sign-in")
    sign_in(page, url + "/customers", "csm@example.com")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    page.click("nav >> text=Overview")
    expect(page.locator("#stat-customers")).to_have_text("4")
    expect(page.locator("#funnel tbody tr").first).to_be_visible()  # the funnel report
    shot("overview")

    # A stage count opens the customers behind it: the list's total is the count clicked.
    bar = page.locator("#stages .bar").filter(has_text="churned")
    count = bar.locator(".n").inner_text()
    bar.locator(".n").click()
    expect(page).to_have_url(url + "/customers?stage=churned")
    plural = "" if count == "1" else "s"
    expect(page.locator("#customer-count")).to_have_text(f"{count} customer{plural}")
    shot("customers-churned")

    # The at-risk list: one click, sorted by CLV, with reasons.
    page.click("#at-risk")
    expect(page).to_have_url(url + "/customers?health_state=at_risk%2Cunhappy&sort=clv&order=desc")
    expect(page.locator("h1")).to_have_text("At-risk customers")
    rows = page.locator("#customer-table tbody tr")
    expect(rows.first).to_contain_text("points)")  # a top reason, in words
    shot("at-risk")

    # Search, then a customer's 360, a note, and back to the list.
    page.fill("#customer-search", "ann@EXAMPLE")
    page.press("#customer-search", "Enter")
    expect(page.locator("#customer-count")).to_have_text("1 customer")
    page.click("#customer-table tbody a")
    expect(page).to_have_url(f"{url}/customers/{ids['ann']}")
    expect(page.locator("#customer-title")).to_contain_text("ann")
    expect(page.locator("#stage-history")).to_contain_text("churned")
    expect(page.locator("#customer-timeline")).to_contain_text("Moved from")
    page.fill("#note-form textarea", "Called: unhappy with delivery times")
    page.select_option("#note-form select[name=rating]", "2")
    page.click("#note-form button")
    expect(page.locator("#notes li").first).to_contain_text("unhappy with delivery times")
    expect(page.locator("#notes li").first).to_contain_text("2/5")
    shot("customer-360")
    page.go_back()
    expect(page).to_have_url(
        url + "/customers?q=ann%40EXAMPLE&health_state=at_risk%2Cunhappy&sort=clv&order=desc"
    )
    page.go_back()
    expect(page.locator("h1")).to_have_text("At-risk customers")
    for name in ("segments", "reports", "engagement", "settings"):
        page.click(f"nav >> text={name.capitalize()}")
        expect(page).to_have_url(f"{url}/{name}")
        shot(f"nav-{name}")
