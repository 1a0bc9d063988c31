"""The dashboard in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from clm.ingest import ingest
from clm.store.engine import Database
from clm.web import create_app
from tests.conftest import IN_CI, Tenant, free_port, make_tenant

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def site(sqlite_db: Database) -> Iterator[tuple[str, Tenant]]:
    tenant = make_tenant(sqlite_db, "records")
    ingest(sqlite_db, tenant.id, [
        {"type": "page", "anonymousId": "v1", "messageId": "1", "timestamp": "2026-01-01T09:00:00Z",
         "context": {"campaign": {"medium": "paid_search", "source": "google"}}},
        {"type": "identify", "anonymousId": "v1", "userId": "ann", "messageId": "2",
         "traits": {"email": "ann@example.com"}, "timestamp": "2026-01-01T09:05:00Z"},
        {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "3",
         "properties": {"revenue": 42}, "timestamp": "2026-01-02T09:00:00Z"},
        {"type": "track", "userId": "bob", "event": "Email Opened", "messageId": "4",
         "properties": {"channel": "email"}, "timestamp": "2026-01-03T09:00:00Z"},
    ])  # fmt: skip
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(sqlite_db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", tenant
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser_page() -> Iterator[object]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("CI=true requires /usr/bin/chromium (scripts/setup installs it)")
        pytest.skip("no /usr/bin/chromium: run scripts/setup as root to install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page()
        yield page
        browser.close()


def test_dashboard_opens_a_workspace_and_finds_a_customer(
    site: tuple[str, Tenant], browser_page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    url, tenant = site
    page = browser_page
    assert isinstance(page, Page)
    page.goto(url + "/")
    page.fill("#key", "clm_sk_wrong")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_have_text("That key does not open a workspace.")
    page.fill("#key", tenant.secret_key)
    page.click("#login-form button")
    expect(page.locator("#stat-customers")).to_have_text("2")
    expect(page.locator("#stat-purchases")).to_have_text("1")
    expect(page.locator("#stat-revenue")).to_have_text("42")
    expect(page.locator("#channels")).to_contain_text("paid_search")
    page.select_option("#search-kind", "email")
    page.fill("#search-value", "ANN@example.com")
    page.click("#search-form button")
    expect(page.locator("#customer")).to_be_visible()
    expect(page.locator("#customer-title")).to_contain_text("ann")
    expect(page.locator("#customer-identities li")).to_have_count(3)
    expect(page.locator("#customer-timeline tr")).to_have_count(3)
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    page.fill("#search-value", "nobody")
    page.select_option("#search-kind", "user_id")
    page.click("#search-form button")
    expect(page.locator("#search-error")).to_have_text("No such customer.")
    # The key is remembered: a reload opens the workspace directly.
    page.reload()
    expect(page.locator("#stat-events")).to_have_text("4")
