"""Editing a channel in Settings in Debian's Chromium, by keyboard: changing the SMTP port keeps
the password the form never saw (read back from the database); ticking "Replace" stores the
new one; a bad port is shown at its field (the API's 422); an SMS channel set up from nothing
names the secret it lacks. Screenshots at 1280 and 400 px."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from pydantic import SecretStr

from clm.accounts import Role
from clm.engage import repository as repo
from clm.engage.schemas import EmailProvider
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.conftest import make_tenant
from tests.web.browser import Shot, refused_once, sign_in
from tests.web.servers import serving


@pytest.fixture
def channel_site(db: Database) -> Iterator[tuple[str, Database, int]]:
    tenant = make_tenant(db, "channels")
    add_user(db, "ops@example.com", tenant.id, Role.ADMIN)
    with db.transaction() as session:
        repo.set_provider(session, tenant.id, EmailProvider(
            host="smtp.example.com", port=587, username="mailer",
            password=SecretStr("hunter2-smtp"), sender="Shop <hi@example.com>",
        ))  # fmt: skip
    with serving(db) as url:
        yield url, db, tenant.id


def _stored(db: Database, workspace_id: int, channel: str) -> dict[str, object]:
    with db.session() as session:
        return repo.secret_dump(repo.get_provider(session, workspace_id, channel))


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_edit_a_channel_keeping_or_replacing_its_secret(
    channel_site: tuple[str, Database, int], browser_page: Page, shot: Shot, width: int
) -> None:
    url, db, workspace_id = channel_site
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, url + "/settings/guardrails", "ops@example.com")
    email = page.locator("li[data-channel=email]")
    expect(email).to_contain_text("set")  # the password, never shown back
    assert "hunter2" not in page.content()
    # One field changed by keyboard; the password is kept though the form never held it.
    page.focus("#edit-channel-email")
    page.keyboard.press("Enter")
    expect(page.locator("#channel-email-password")).to_have_count(0)  # hidden until "Replace"
    page.fill("#channel-email-port", "")
    page.focus("#channel-email-port")
    page.keyboard.type("2525")
    page.keyboard.press("Enter")
    expect(page.locator("#channel-saved")).to_have_text("Saved email (password kept).")
    stored = _stored(db, workspace_id, "email")
    assert (stored["port"], stored["password"], stored["host"]) == (
        2525, "hunter2-smtp", "smtp.example.com",
    )  # fmt: skip
    # A bad port: the API's 422 at the field; nothing stored.
    page.click("#edit-channel-email")
    page.fill("#channel-email-port", "70000")
    page.press("#channel-email-port", "Enter")
    expect(page.locator("#channel-email-port-error")).to_contain_text("less than or equal to 65535")
    expect(page.locator("#channel-email-port")).to_have_attribute("aria-invalid", "true")
    refused_once(page)  # the PATCH, on purpose
    shot("settings-channel-error")
    assert _stored(db, workspace_id, "email")["port"] == 2525
    # Replace the password explicitly.
    page.fill("#channel-email-port", "2525")
    expect(page.locator("#channel-email-port-error")).to_have_count(0)  # about the old value
    page.focus("#channel-email-password-replace")
    page.keyboard.press("Space")
    page.fill("#channel-email-password", "n3w-smtp-secret")
    shot("settings-channel-edit")
    page.press("#channel-email-password", "Enter")
    expect(page.locator("#channel-saved")).to_have_text("Saved email (password replaced).")
    assert _stored(db, workspace_id, "email")["password"] == "n3w-smtp-secret"
    assert "n3w-smtp-secret" not in page.content()
    # SMS from nothing: the token it lacks is named at its field.
    page.click("#edit-channel-sms")
    page.fill("#channel-sms-base_url", "https://1.1.1.1")
    page.fill("#channel-sms-account_sid", "AC123")
    page.fill("#channel-sms-sender", "+15550001")
    page.click("#channel-sms-save")
    expect(page.locator("#channel-sms-auth_token-error")).to_be_visible()
    refused_once(page)  # the PATCH, on purpose
    page.fill("#channel-sms-auth_token", "hunter2-sms")
    page.click("#channel-sms-save")
    expect(page.locator("#channel-saved")).to_have_text("Saved sms (auth token replaced).")
    expect(page.locator("li[data-channel=sms]")).to_contain_text("AC123")
    assert _stored(db, workspace_id, "sms")["auth_token"] == "hunter2-sms"
    shot("settings-channels")
