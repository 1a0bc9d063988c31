"""The overview's "At the end of" picker, in Debian's Chromium against the real app: each week
or month is named by the day its counts stand at (its last day, or "now" for the one still
running), not by its first day, which read as if the counts were a week older than they are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.lifecycle.test_customer_list import seed_shop
from tests.web.browser import console_errors, sign_in
from tests.web.servers import serving

pytestmark = pytest.mark.slow


@pytest.fixture
def shop(db: Database) -> Iterator[str]:
    workspace_id, _ = seed_shop(db)
    add_user(db, "csm@example.com", workspace_id, Role.OWNER)
    with serving(db) as url:
        yield url


def test_each_point_is_named_by_the_day_its_counts_stand_at(shop: str, browser_page: Page) -> None:
    page, url = browser_page, shop
    today = datetime.now(UTC).date()
    # Weeks run Monday to Sunday: the week before this one ended on the last Sunday before
    # this week's Monday; the three before it a week apart.
    sundays = [today - timedelta(days=today.weekday() + 1 + 7 * n) for n in (3, 2, 1, 0)]
    sign_in(page, url + "/overview", "csm@example.com")  # weekly, the last 12 months
    expect(page.locator("#chart-stages canvas")).to_be_visible()
    options = page.locator("#stages-point-select option").all_inner_texts()
    assert options[-5:] == [d.isoformat() for d in sundays] + ["now"]
    assert page.locator("#health-point-select option").all_inner_texts() == options
    # Monthly: the last day of each month (last month's: the day before this month's first).
    page.select_option("#range select[name=grain]", "month")
    expect(page).to_have_url(url + "/overview?grain=month")
    last_month_end = today.replace(day=1) - timedelta(days=1)
    expect(page.locator("#stages-point-select option").nth(-2)).to_have_text(
        last_month_end.isoformat()
    )
    expect(page.locator("#stages-point-select option").last).to_have_text("now")
    assert console_errors(page) == []
