"""Signing in to the dashboard as a person, in Debian's Chromium: the session cookie (never
visible to scripts), sign-out that ends the session on the server, and a password reset whose
link arrives by the workspace's own SMTP channel (a real SMTP server on loopback)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.config import get_settings
from clm.engage import repository as engage_repo
from clm.engage.schemas import EmailProvider
from clm.store.engine import Database
from tests.accounts.conftest import PASSWORD, add_user
from tests.conftest import Tenant
from tests.engage.conftest import SmtpSink, smtp_sink  # noqa: F401 - the fixture
from tests.web.browser import Shot, refused_once
from tests.web.test_dashboard import site  # noqa: F401 - the fixture


@pytest.fixture
def public_url(site: tuple[str, Tenant], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # noqa: F811
    url = site[0]
    monkeypatch.setenv("CLM_PUBLIC_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_a_person_signs_in_and_out_with_the_session_cookie(
    site: tuple[str, Tenant],  # noqa: F811
    browser_page: Page,
    db: Database,
    shot: Shot,
) -> None:
    url, tenant = site
    add_user(db, "viewer@example.com", tenant.id, Role.VIEWER)
    page = browser_page
    page.goto(url + "/")
    page.fill("#email", "viewer@example.com")
    page.fill("#password", "not the password")
    page.click("#signin-form button")
    expect(page.locator("#signin-error")).to_have_text("Wrong email or password.")
    refused_once(page, 401)  # the wrong password, on purpose
    page.fill("#password", PASSWORD)
    page.click("#signin-form button")
    expect(page.locator("#stat-customers")).to_have_text("2")
    expect(page.locator("#stat-revenue")).to_have_text("$42")
    shot("signed-in")
    # The session cookie is HttpOnly: the page's scripts see only the CSRF token.
    cookies = page.evaluate("document.cookie")
    assert "clm_csrf=" in cookies and "clm_session" not in cookies
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("sessionStorage.length") == 0
    session_cookie = next(c for c in page.context.cookies() if c["name"] == "clm_session")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
    # A reload stays signed in (the cookie), sign-out ends the session on the server.
    page.reload()
    expect(page.locator("#stat-events")).to_have_text("4")
    page.click("#sign-out")
    expect(page.locator("#signin-form")).to_be_visible()
    page.context.add_cookies([{**session_cookie}])  # replaying the old cookie does not help
    page.reload()
    expect(page.locator("#signin-form")).to_be_visible()
    expect(page.locator("#overview")).to_be_hidden()


def test_a_forgotten_password_is_reset_by_an_emailed_single_use_link(
    site: tuple[str, Tenant],  # noqa: F811
    browser_page: Page,
    db: Database,
    smtp_sink: SmtpSink,  # noqa: F811
    public_url: str,
) -> None:
    url, tenant = site
    add_user(db, "cs@example.com", tenant.id, Role.CUSTOMER_SUCCESS)
    with db.transaction() as session:
        provider = EmailProvider(host=smtp_sink.host, port=smtp_sink.port, sender="CLM <c@x.io>")
        engage_repo.set_provider(session, tenant.id, provider)
    page = browser_page
    page.goto(url + "/")
    page.click("text=Forgot your password?")
    # An unknown address gets the same answer, and no email.
    page.fill("#ask-email", "stranger@example.com")
    page.click("#ask-form button")
    expect(page.locator("#ask-status")).to_contain_text("If that address has an account")
    assert smtp_sink.messages == []
    page.evaluate("document.getElementById('ask-status').textContent = ''")
    page.fill("#ask-email", "CS@example.com")
    page.click("#ask-form button")
    expect(page.locator("#ask-status")).to_contain_text("If that address has an account")
    (mail,) = smtp_sink.messages  # sent before the answer: the link is never stored
    assert mail["To"] == "cs@example.com"
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    link = re.search(r"(http\S+/reset\.html#token=\S+)", body.get_content())
    assert link is not None and link.group(1).startswith(public_url)

    page.goto(link.group(1))
    page.fill("#new-password", "a brand new passphrase")
    page.click("#choose-form button")
    expect(page.locator("#choose-status")).to_contain_text("Password set.")
    # The same link again: refused.
    page.goto(link.group(1))
    expect(page.locator("#choose-status")).to_have_text("")  # reloaded on the new fragment
    page.fill("#new-password", "yet another passphrase")
    page.click("#choose-form button")
    expect(page.locator("#choose-status")).to_contain_text("invalid, used or expired")
    # The new password opens the dashboard; the old one does not.
    page.goto(url + "/")
    page.fill("#email", "cs@example.com")
    page.fill("#password", PASSWORD)
    page.click("#signin-form button")
    expect(page.locator("#signin-error")).to_have_text("Wrong email or password.")
    page.fill("#password", "a brand new passphrase")
    page.click("#signin-form button")
    expect(page.locator("#stat-customers")).to_have_text("2")
