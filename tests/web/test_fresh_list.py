"""The customer list in Debian's Chromium after an import bigger than a read catches up on
itself, with no live loop running: the page shows the customers it had, says it is refreshing,
and shows the imported ones without a reload. No console error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.ingest import ingest
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import seed_shop
from tests.lifecycle.test_fresh_list import NEW, _import
from tests.web.browser import FIRST_LOAD, Shot, sign_in
from tests.web.servers import serving


@pytest.fixture
def shop_site(db: Database) -> Iterator[tuple[str, int]]:
    workspace_id, _ = seed_shop(db)  # 4 customers
    add_user(db, "growth@example.com", workspace_id, Role.MARKETER)
    with serving(db) as url:
        yield url, workspace_id


@pytest.mark.slow
def test_the_list_shows_its_customers_while_refreshing_and_updates_without_a_reload(
    shop_site: tuple[str, int], db: Database, browser_page: Page, shot: Shot
) -> None:
    url, workspace_id = shop_site
    page = browser_page
    sign_in(page, url + "/customers", "growth@example.com")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    ingest(db, workspace_id, _import())  # 6,000 events, 60 new customers
    page.goto(url + "/customers")
    # The first answer starts the background refresh: the four (or all, if it already
    # committed), never none, and the note.
    expect(page.locator("#customer-refreshing")).to_have_text("(refreshing after an import)")
    assert page.locator("#customer-count").inner_text().split()[0] in ("4", str(4 + NEW))
    shot("customers-refreshing", loading=True)
    # No reload: the page asks again and the note goes.
    expect(page.locator("#customer-count")).to_have_text(f"{4 + NEW} customers", timeout=FIRST_LOAD)
    expect(page.locator("#customer-refreshing")).to_have_count(0)
