"""The customer list's range filters in Debian's Chromium, with the keyboard only: open "More
filters", type bounds, Enter; the list, the URL and the chips agree with what ``seed_shop``
wrote; a chip's × removes its filter and the back button brings it back; a bound above its
pair is shown at its field (the API's 422); "Save as segment" keeps the ranges, and the
segment's members are the same customers. The Purchases header sorts both ways. No console
error; screenshots at 1280 and 400 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import seed_shop
from tests.lifecycle.test_customer_ranges import _score
from tests.web.browser import Shot, refused_once, sign_in
from tests.web.servers import serving


@pytest.fixture
def ranged_site(db: Database) -> Iterator[tuple[str, dict[str, int]]]:
    workspace_id, ids = seed_shop(db)
    _score(db, workspace_id, ids)
    add_user(db, "growth@example.com", workspace_id, Role.MARKETER)
    with serving(db) as url:
        yield url, ids


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_range_filters_by_keyboard_chips_back_button_and_save_as_segment(
    ranged_site: tuple[str, dict[str, int]], browser_page: Page, shot: Shot, width: int
) -> None:
    url, ids = ranged_site
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})

    def listed() -> list[int]:
        links = page.locator("#customer-table tbody tr td:first-child a")
        hrefs = links.evaluate_all("a => a.map(x => x.href)")
        return sorted(int(h.rsplit("/", 1)[1]) for h in hrefs)

    sign_in(page, url + "/customers", "growth@example.com")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    # The Purchases header sorts most first, then fewest; ties (ann and bob, 1 each) by id.
    bought = {ids["ann"]: 1, ids["bob"]: 1, ids["cid"]: 0, ids["dora"]: 2}
    sort_button = page.locator("#customer-table th button", has_text="Purchases")
    for order, shown in (("desc", "&order=desc"), ("asc", "")):  # asc, the default, unsaid
        sort_button.click()
        expect(page).to_have_url(f"{url}/customers?sort=purchases{shown}")
        expected = sorted(bought, key=lambda c: (bought[c], c), reverse=order == "desc")
        expect(page.locator("#customer-table tbody tr td:first-child .muted")).to_have_text(
            [re.compile(rf"^#{c}\b") for c in expected]
        )
    page.goto(url + "/customers")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    # Keyboard only: focus the disclosure, open it, tab to the revenue bound, type, Enter.
    page.focus("#range-filters summary")
    page.keyboard.press("Enter")
    expect(page.locator("#range-revenue_min")).to_be_visible()
    page.focus("#range-revenue_min")
    page.keyboard.type("40")
    page.focus("#range-p_alive_min")
    page.keyboard.type("50")  # percent: P(alive) >= 0.5
    page.keyboard.press("Enter")
    # seed_shop + _score: revenue bob 80, dora 45, ann 30; P(alive) bob .9, dora .7, ann .2.
    expect(page.locator("#customer-count")).to_have_text("2 customers")
    assert listed() == sorted([ids["bob"], ids["dora"]])
    assert parse_qs(urlparse(page.url).query) == {"p_alive_min": ["0.5"], "revenue_min": ["40"]}
    chips = page.locator("#filter-chips li.chip > span")
    expect(chips).to_have_text(["P(alive) ≥ 50%", "Revenue ≥ $40"])
    # Gone quiet for 3+ days too: dora (5 days), not bob (2).
    page.focus("#range-unseen_days")
    page.keyboard.type("3")
    page.keyboard.press("Enter")
    expect(page.locator("#customer-count")).to_have_text("1 customer")
    assert listed() == [ids["dora"]]
    expect(chips).to_have_count(3)
    expect(page.locator("#filter-chips")).to_contain_text("Not seen for 3 days")
    shot("customers-ranges")
    # Remove the P(alive) chip with the keyboard: ann (30) is still below 40, so still dora.
    page.focus("#filter-chips button[aria-label='Remove filter: P(alive) ≥ 50%']")
    page.keyboard.press("Enter")
    expect(chips).to_have_count(2)
    assert "p_alive_min" not in parse_qs(urlparse(page.url).query)
    expect(page.locator("#range-p_alive_min")).to_have_value("")
    page.go_back()  # the back button brings the chip and the field back
    expect(chips).to_have_count(3)
    expect(page.locator("#range-p_alive_min")).to_have_value("50")
    # A bound below its pair: the API's 422, shown at the field it names.
    page.fill("#range-clv_min", "100")
    page.fill("#range-clv_max", "10")
    page.press("#range-clv_max", "Enter")
    expect(page.locator("#range-clv_max")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#range-clv_max-error")).to_have_text("is below the lower bound (100)")
    refused_once(page)  # the list request, on purpose
    shot("customers-ranges-error")
    page.fill("#range-clv_min", "")
    page.fill("#range-clv_max", "")
    page.press("#range-clv_max", "Enter")
    expect(page.locator("#customer-count")).to_have_text("1 customer")
    # P(alive) is typed as a percent, so its error names the lower bound in percent (50, not
    # the API's fraction 0.5).
    page.fill("#range-p_alive_max", "20")
    page.press("#range-p_alive_max", "Enter")
    expect(page.locator("#range-p_alive_max-error")).to_have_text("is below the lower bound (50%)")
    refused_once(page)  # the list request, on purpose
    page.fill("#range-p_alive_max", "")
    page.press("#range-p_alive_max", "Enter")
    expect(page.locator("#customer-count")).to_have_text("1 customer")
    # Save as segment keeps every range; its members are the list's customers.
    page.click("#save-segment")
    form = page.locator("#save-segment-form")
    expect(form).to_contain_text("P(alive) ≥ 50%")
    expect(form).to_contain_text("revenue ≥ $40")
    expect(form).to_contain_text("last seen 3 days ago or earlier")
    page.fill("#segment-name", "Valuable, gone quiet")
    page.press("#segment-name", "Enter")
    expect(page.locator("#segment-name-title")).to_have_text("Valuable, gone quiet")
    expect(page.locator("#member-count")).to_have_text("1 member")
    members = page.locator("#member-table tbody tr td:first-child a")
    assert members.evaluate_all("a => a.map(x => x.href)")[0].endswith(f"/{ids['dora']}")
    shot("segment-ranges")
