"""``/docs`` and ``/redoc`` in Chromium with every request off loopback refused: both render,
ask for nothing outside this server, log no console error, and Swagger's "Try it out" answers
with data once a key is entered under "Authorize"."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from clm.web.docs import install_docs
from tests.conftest import Tenant
from tests.web.browser import console_errors
from tests.web.test_dashboard import site

__all__ = ["install_docs", "site"]
# The pages draw the OpenAPI schema, the same whatever the database: one backend suffices.
pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def _offline(page: Any) -> list[str]:
    """Abort every request that leaves loopback; returns the list of what was refused."""
    refused: list[str] = []

    def handle(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return refused


@pytest.mark.slow
def test_redoc_renders_offline_without_console_errors(
    site: tuple[str, Tenant], browser_page: Page
) -> None:
    url, _ = site
    page = browser_page
    refused = _offline(page)
    page.goto(url + "/redoc")
    # Redoc draws the operations' menu and the security scheme section from /openapi.json.
    # (Redoc parses the whole schema first: seconds on a loaded machine.)
    expect(page.locator(".menu-content")).to_contain_text("lifecycle", timeout=60_000)
    expect(page.locator(".menu-content")).to_contain_text("API docs by Redocly")
    expect(page.locator("body")).to_contain_text("bearerKey")
    page.wait_for_load_state("networkidle")
    assert refused == []
    assert console_errors(page) == []


@pytest.mark.slow
def test_swagger_try_it_out_works_offline_with_a_key(
    site: tuple[str, Tenant], browser_page: Page
) -> None:
    url, tenant = site
    page = browser_page
    refused = _offline(page)
    page.goto(url + "/docs")
    expect(page.locator(".swagger-ui .information-container")).to_contain_text(
        "CLM", timeout=60_000
    )
    page.click("button.authorize")
    bearer = page.locator(".dialog-ux .auth-container", has_text="bearerKey")
    bearer.locator("input").fill(tenant.secret_key)
    bearer.locator("button.authorize").click()
    bearer.locator("button.btn-done").click()
    # Swagger UI draws a long spec's operations as they scroll into view, as a reader would
    page.locator("#operations-tag-management").scroll_into_view_if_needed()
    page.mouse.wheel(0, 400)
    operation = page.locator("#operations-management-current_workspace_api_v1_workspace_get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    answer = operation.locator(".responses-table.live-responses-table")
    expect(answer.locator("tbody .response-col_status").first).to_have_text("200")
    expect(answer).to_contain_text(tenant.slug)
    assert refused == []
    assert console_errors(page) == []
