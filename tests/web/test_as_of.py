"""The overview's stage counts and a customer's stage pill agree on "now" (the overview used to
count stages at the workspace's last event while the pill used today), and say so."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from clm.ingest import ingest
from clm.lifecycle import run_lifecycle
from clm.store.engine import Database
from tests.conftest import Tenant, make_tenant
from tests.web.browser import sign_in_with_key
from tests.web.servers import serving


def _iso(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def quiet_shop(db: Database) -> Iterator[tuple[str, Tenant]]:
    """Dan bought 400 days ago; the workspace's last event (Eve's visit) was 200 days ago.
    Under classic (churned 365 days after the last purchase) Dan was converted at that last
    event and is churned now."""
    tenant = make_tenant(db, "quiet")
    ingest(db, tenant.id, [
        {"type": "identify", "userId": "dan", "messageId": "d1", "timestamp": _iso(401),
         "traits": {"email": "dan@example.com"}},
        {"type": "track", "userId": "dan", "event": "Order Completed", "messageId": "d2",
         "properties": {"revenue": 20}, "timestamp": _iso(400)},
        {"type": "page", "anonymousId": "eve", "messageId": "e1", "timestamp": _iso(200)},
    ])  # fmt: skip
    run_lifecycle(db, tenant.id)
    with serving(db) as url:
        yield url, tenant


def _customer_id(url: str, tenant: Tenant, user_id: str) -> int:
    answer = httpx.get(
        url + "/api/v1/customers/lookup", params={"kind": "user_id", "value": user_id},
        headers={"Authorization": f"Bearer {tenant.secret_key}"},
    )  # fmt: skip
    return int(answer.json()["id"])


def test_overview_and_customer_pill_agree_on_now(
    quiet_shop: tuple[str, Tenant], browser_page: Page
) -> None:
    url, tenant = quiet_shop
    page = browser_page
    sign_in_with_key(page, url + "/", tenant.secret_key)
    expect(page.locator("#stages-at")).to_have_text("now")
    churned = page.locator("#stages .bar", has_text="churned")
    expect(churned.locator(".n")).to_have_text("1")
    conversion = page.locator("#stages .bar", has_text="conversion")
    expect(conversion.locator(".n")).to_have_text("0")
    page.goto(f"{url}/customers/{_customer_id(url, tenant, 'dan')}")
    expect(page.locator("#customer-lifecycle")).to_contain_text("stage: churned")
    expect(page.locator("#customer-lifecycle")).not_to_contain_text("as of")
