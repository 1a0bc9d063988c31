"""The browser tests' fixtures: a page of Debian's Chromium (never a downloaded browser) that
records its console errors, and ``shot`` to save screenshots of it. The helpers they use are
in ``tests/web/browser.py``; the app is served by ``tests/web/servers.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import IN_CI
from tests.web.browser import CHROMIUM, CONSOLE, Shot

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A fresh page in its own browser; its console errors are kept for ``console_errors``."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("CI=true requires /usr/bin/chromium (scripts/setup installs it)")
        pytest.skip("no /usr/bin/chromium: run scripts/setup as root to install it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors = CONSOLE.setdefault(id(page), [])
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        CONSOLE.pop(id(page), None)
        browser.close()


@pytest.fixture
def shot(browser_page: Page, request: pytest.FixtureRequest) -> Shot:
    """Screenshots of the test's page, named after the backend the test runs on: the ``db``
    fixture's parameter where the test runs over it, else SQLite (the demo's file)."""
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("db", "sqlite") if callspec is not None else "sqlite"
    return Shot(browser_page, str(backend), request.node.nodeid)
