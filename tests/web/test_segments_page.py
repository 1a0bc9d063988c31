"""Segments in Debian's Chromium against the real app: filter the customer list to the at-risk
customers, save that as a segment, open it and see its members (the same customers the list
showed), its conditions in words and its size chart; the segments list shows it with its size.
No console error, and nothing wider than the window (at 400 px the members are cards, as in the
customer list); screenshots at 1280 and 400 px in ``tests/web/screenshots/``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.lifecycle.customer_list import CustomerQuery, list_customers
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import seed_shop
from tests.web.browser import Shot, sign_in
from tests.web.servers import serving


@pytest.fixture
def marketing_site(db: Database) -> Iterator[tuple[str, list[int]]]:
    workspace_id, _ = seed_shop(db)
    add_user(db, "growth@example.com", workspace_id, Role.MARKETER)
    # The at-risk customers, read straight from the list's query (the page must show these).
    risky = list_customers(db, workspace_id, CustomerQuery(health_state=["at_risk", "unhappy"]))
    with serving(db) as url:
        yield url, sorted(r.id for r in risky.items)


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_filter_to_at_risk_save_a_segment_open_it_and_see_its_members(
    marketing_site: tuple[str, list[int]], browser_page: Page, shot: Shot, width: int
) -> None:
    url, risky = marketing_site
    assert risky, "seed_shop has at-risk customers"
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})

    def shot_whole(name: str) -> None:
        shot(name)
        # Nothing is cut off on the right: the page is no wider than the window.
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide at {width} px"

    sign_in(page, url + "/segments", "growth@example.com")
    expect(page.locator("#no-segments")).to_be_visible()
    page.click("nav >> text=Customers")
    expect(page.locator("#save-segment")).to_be_disabled()  # nothing filtered: nothing to save
    page.click("#at-risk")
    noun = "customer" if len(risky) == 1 else "customers"
    expect(page.locator("#customer-count")).to_have_text(f"{len(risky)} {noun}")
    page.click("#save-segment")
    expect(page.locator("#save-segment-form")).to_contain_text(
        "health is happy but at risk or unhappy"
    )
    page.fill("#segment-name", "")
    page.click("#save-segment-confirm")  # no name: said before asking the server
    expect(page.locator("#save-segment-form .error")).to_have_text("Give the segment a name.")
    shot_whole("segment-save")
    page.fill("#segment-name", "At risk, by CLV")
    page.press("#segment-name", "Enter")
    expect(page.locator("#segment-name-title")).to_have_text("At risk, by CLV")
    expect(page).to_have_url(page.url)  # a URL of its own: /segments/<id>
    assert "/segments/" in page.url
    members = "member" if len(risky) == 1 else "members"
    expect(page.locator("#member-count")).to_have_text(f"{len(risky)} {members}")
    links = page.locator("#member-table tbody tr td:first-child a")
    expect(links).to_have_count(len(risky))
    shown = sorted(int(h.rsplit("/", 1)[1]) for h in links.evaluate_all("a => a.map(x => x.href)"))
    assert shown == risky
    expect(page.locator("#segment-sizes canvas")).to_be_visible()
    expect(page.locator("#history-note")).to_contain_text("Worked out from the stage and health")
    shot_whole("segment")
    # ... nor hidden behind the members table's own scroll bar (what the old table did).
    hidden = page.eval_on_selector(
        "#member-table", "t => t.parentElement.scrollWidth - t.parentElement.clientWidth"
    )
    assert hidden <= 0, f"the members table scrolls {hidden} px sideways at {width} px"
    page.go_back()  # back to the filtered list
    expect(page.locator("#customer-count")).to_have_text(f"{len(risky)} {noun}")
    page.click("nav >> text=Segments")
    row = page.locator("#segment-table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td.num")).to_have_text(str(len(risky)))
    expect(row.locator("canvas")).to_be_visible()
    shot_whole("segments")
