"""The dashboard in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from clm.ingest import ingest
from clm.store.engine import Database
from tests.conftest import Tenant, make_tenant
from tests.web.browser import console_errors, refused_once, sign_in_with_key
from tests.web.servers import serving


@pytest.fixture
def site(db: Database) -> Iterator[tuple[str, Tenant]]:
    tenant = make_tenant(db, "records")
    ingest(db, tenant.id, [
        {"type": "page", "anonymousId": "v1", "messageId": "1", "timestamp": "2026-01-01T09:00:00Z",
         "context": {"campaign": {"medium": "paid_search", "source": "google"}}},
        {"type": "identify", "anonymousId": "v1", "userId": "ann", "messageId": "2",
         "traits": {"email": "ann@example.com"}, "timestamp": "2026-01-01T09:05:00Z"},
        {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "3",
         "properties": {"revenue": 42}, "timestamp": "2026-01-02T09:00:00Z"},
        {"type": "track", "userId": "bob", "event": "Email Opened", "messageId": "4",
         "properties": {"channel": "email"}, "timestamp": "2026-01-03T09:00:00Z"},
    ])  # fmt: skip
    with serving(db) as url:
        yield url, tenant


def test_the_app_opens_a_workspace_with_a_key_and_routes_by_url(
    site: tuple[str, Tenant], browser_page: Page
) -> None:
    url, tenant = site
    page = browser_page
    sign_in_with_key(page, url + "/", "clm_sk_wrong")
    expect(page.locator("#login-error")).to_have_text("That key does not open a workspace.")
    refused_once(page, 401)  # the wrong key, on purpose
    page.fill("#key", tenant.secret_key)
    page.click("#login-form button")
    expect(page.locator("#stat-customers")).to_have_text("2")
    expect(page.locator("#stat-purchases")).to_have_text("1")
    expect(page.locator("#stat-revenue")).to_have_text("$42")
    expect(page.locator("#channels")).to_contain_text("paid search")
    # Each page is a URL; the back button returns; a deep link reloads into the same page.
    page.click("nav >> text=Settings")
    expect(page).to_have_url(url + "/settings")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Settings")
    page.go_back()
    expect(page.locator("#stat-customers")).to_have_text("2")
    ann = httpx.get(
        url + "/api/v1/customers/lookup", params={"kind": "email", "value": "ANN@example.com"},
        headers={"Authorization": f"Bearer {tenant.secret_key}"},
    ).json()  # fmt: skip
    page.goto(f"{url}/customers/{ann['id']}")
    expect(page.locator("#customer-title")).to_contain_text("ann")
    expect(page.locator("#customer-identities li")).to_have_count(3)
    expect(page.locator("#customer-timeline tr")).to_have_count(3)
    assert console_errors(page) == []
    # The session survives a reload only with a key in this tab (sessionStorage).
    page.reload()
    expect(page.locator("#customer-title")).to_contain_text("ann")


def test_app_paths_answer_the_page_without_shadowing_the_api(site: tuple[str, Tenant]) -> None:
    url, _ = site
    for path in ("/", "/overview", "/customers", "/customers/12", "/segments/x", "/settings"):
        answer = httpx.get(url + path)
        assert answer.status_code == 200, path
        assert '<script type="importmap">' in answer.text
    for path in ("/api/v1/nothing-here", "/v1/nothing-here", "/public/nothing-here", "/nowhere"):
        answer = httpx.get(url + path)
        assert answer.status_code == 404, path
        assert "importmap" not in answer.text
    # Only the vendored files on the allow-list are served, and they are installed.
    assert httpx.get(url + "/assets/vendor/preact/dist/preact.mjs").status_code == 200
    assert httpx.get(url + "/assets/vendor/preact/package.json").status_code == 404


def test_docs_are_offline_and_say_how_to_authenticate(site: tuple[str, Tenant]) -> None:
    url, _ = site
    for path in ("/docs", "/redoc"):
        page = httpx.get(url + path).text
        assert "/assets/vendor/" in page and "cdn" not in page.lower(), path
    schema = httpx.get(url + "/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {**schemes["bearerKey"], "type": "http", "scheme": "bearer"}
    assert {"bearerKey": []} in schema["paths"]["/api/v1/workspace"]["get"]["security"]
    assert schema["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    track = schema["paths"]["/v1/track"]["post"]["requestBody"]["content"]["application/json"]
    body = schema["components"]["schemas"][track["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"event", "userId", "properties"} <= set(body["properties"])
    assert "event" in body["required"]
