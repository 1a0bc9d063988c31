"""Long names on a phone, in Debian's Chromium at 400 px against the real app: a customer whose
name, email and company run to 80-120 characters without a space to break at. Their 360 must
not widen the page (the traits pushed it to 603 px), the health factors' names are read in full
rather than cut with an ellipsis that only a mouse's hover could open, and the timeline reads
as cards instead of a table scrolled sideways; the overview's health bars keep their names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.ingest import ingest
from clm.lifecycle import run_lifecycle
from clm.lifecycle.current_state import refresh_state
from clm.lifecycle.health_current import score_health
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import NOW, _at, seed_shop
from tests.web.browser import console_errors, sign_in
from tests.web.servers import serving

pytestmark = pytest.mark.slow

NAME = "Maximilian Alexander Konstantin von Hohenzollern-Sigmaringen-Wittelsbach der Dritte"
EMAIL = "maximilian.alexander.konstantin.vonhohenzollernsigmaringen@a-very-long-domain.example.com"
VISITS = 10_000
COMPANY = "Internationale Handelsgesellschaft für Schallplatten und Tonträger mbH & Co. KG"

# Widths the page and its parts must keep to, measured in the browser: the document's own,
# and every element that scrolls or clips its content sideways (a table's wrapper, a name).
OVERFLOWING = """(selector) => [...document.querySelectorAll(selector)]
  .filter((e) => e.scrollWidth > e.clientWidth + 1)
  .map((e) => `${e.tagName}.${e.className} ${e.scrollWidth} > ${e.clientWidth}`)"""

# Elements taller than one line of their text: a number or a short label broken in two.
ONE_LINE = """(selector) => [...document.querySelectorAll(selector)]
  .filter((e) => e.getClientRects().length > 1
    || e.getBoundingClientRect().height > 1.5 * parseFloat(getComputedStyle(e).lineHeight))
  .map((e) => e.textContent)"""


@pytest.fixture
def shop(db: Database) -> Iterator[str]:
    workspace_id, _ = seed_shop(db)
    ingest(db, workspace_id, [
        {"type": "identify", "userId": "max", "messageId": "m0", "timestamp": _at(20),
         "traits": {"name": NAME, "email": EMAIL, "company": COMPANY}},
        {"type": "track", "userId": "max", "event": "Order Completed", "messageId": "m1",
         "properties": {"revenue": 1234567.89}, "timestamp": _at(19),
         "context": {"campaign": {"medium": "paid_search", "source": "google", "name": "spring"}}},
    ])  # fmt: skip
    # Ten thousand visits: the overview's touchpoint count reads "10,010", five digits wide.
    ingest(db, workspace_id, [
        {"type": "page", "userId": "max", "messageId": f"v{n}", "timestamp": _at(21)}
        for n in range(VISITS)
    ])  # fmt: skip
    run_lifecycle(db, workspace_id, now=NOW, settle_seconds=0)
    score_health(db, workspace_id, now=NOW)
    refresh_state(db, workspace_id, now=NOW)  # the live loop's pass after an import this big
    add_user(db, "csm@example.com", workspace_id, Role.OWNER)
    with serving(db) as url:
        yield url


def test_a_long_named_customer_fits_a_phone(shop: str, browser_page: Page) -> None:
    page, url = browser_page, shop
    page.set_viewport_size({"width": 400, "height": 900})
    sign_in(page, url + "/customers?q=hohenzollern", "csm@example.com")
    expect(page.locator("#customer-count")).to_have_text("1 customer")
    page.click(f"#customer-table a:text('{NAME}')")
    expect(page.locator("#customer-title")).to_contain_text(NAME)
    expect(page.locator("#health-detail .bars .bar").first).to_be_visible()
    expect(page.locator("#customer-timeline tr", has_text="Order Completed")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    assert page.evaluate(OVERFLOWING, "#customer .panel, #customer .table-wrap") == []
    # Each factor's whole name is on the page, none clipped.
    names = page.locator("#health-detail .bars .name")
    assert names.count() >= 10
    assert page.evaluate(OVERFLOWING, "#health-detail .bars .name") == []
    assert "Purchases in the last 365 days" in names.all_inner_texts()
    # The timeline's purchase: its revenue, channel and campaign labelled on its card.
    purchase = page.locator("#customer-timeline tr", has_text="Order Completed")
    expect(purchase).to_contain_text("$1,234,568")
    expect(purchase.locator("td[data-label='channel']")).to_have_text("paid_search")
    expect(purchase.locator("td[data-label='campaign']")).to_have_text("spring")
    for trait in (NAME, EMAIL, COMPANY):
        expect(page.locator("#customer dl.facts dd", has_text=trait)).to_be_visible()

    page.goto(url + "/overview")
    expect(page.locator("#health .bar").first).to_be_visible()
    assert page.evaluate(OVERFLOWING, "#health .name, #stages .name") == []
    # and each count on one line ("17,66" over "0" when the page let words break)
    channels = page.locator("#channels .bar")
    # No channel: seed_shop's 9 events (none names one), max's identify and the visits; max's
    # purchase came from paid search.
    expect(channels.filter(has_text="no channel").locator(".n")).to_have_text(f"{VISITS + 10:,}")
    assert page.evaluate(ONE_LINE, "#health .n, #stages .n, #channels .n") == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 400

    # On a laptop the seven counters share one row: a seven-figure revenue read "$1,234,58"
    # over "4" (the full demo's "$2,500,31" over "6").
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(page.locator("#stat-revenue")).to_contain_text("$1,2")
    assert page.evaluate(ONE_LINE, ".cards .value") == []
    assert page.evaluate(OVERFLOWING, ".cards .card, .cards .value") == []
    assert console_errors(page) == []
