"""What a person sees when the day is interrupted, in Debian's Chromium against the real app:
the server stops mid-page and comes back (the panel says so and "Try again" reloads it), the
sign-in ends while a page is open (the sign-in form comes back, saying why, and signing in again
returns to the same page), and a request the API refuses names the field at fault."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from clm.accounts import Role
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import UserSession
from tests.accounts.conftest import PASSWORD, add_user
from tests.conftest import free_port
from tests.lifecycle.test_customer_list import seed_shop
from tests.web.browser import console_errors, sign_in
from tests.web.servers import serving

pytestmark = pytest.mark.slow

UNREACHABLE = "Cannot reach the CLM server"


@dataclass
class Shop:
    db: Database
    workspace_id: int


@pytest.fixture
def shop(db: Database) -> Shop:
    """seed_shop's four customers (Ann Lee, bob, cid, dora) and a person who may see them."""
    workspace_id, _ = seed_shop(db)
    add_user(db, "csm@example.com", workspace_id, Role.CUSTOMER_SUCCESS)
    return Shop(db, workspace_id)


@pytest.fixture
def served(shop: Shop) -> Iterator[str]:
    with serving(shop.db) as url:
        yield url


def test_a_stopped_server_is_said_in_words_and_try_again_reloads_once_it_is_back(
    shop: Shop, browser_page: Page
) -> None:
    page = browser_page
    port = free_port()
    with serving(shop.db, port) as url:
        sign_in(page, url + "/customers", "csm@example.com")
        expect(page.locator("#customer-count")).to_have_text("4 customers")
    # The server is gone; the person searches anyway.
    page.fill("#customer-search", "ann")
    page.press("#customer-search", "Enter")
    alert = page.locator("#customers p.error")
    expect(alert).to_contain_text(UNREACHABLE)
    assert "Failed to fetch" not in page.inner_text("main")
    # Every failure logged was the refused connection, nothing thrown by the page.
    assert console_errors(page)
    assert all("ERR_CONNECTION_REFUSED" in e for e in console_errors(page)), console_errors(page)
    with serving(shop.db, port):
        alert.get_by_role("button", name="Try again").click()
        # "ann" finds Ann Lee only (name and ann@example.com; bob@shop.io, dora@, cid do not).
        expect(page.locator("#customer-count")).to_have_text("1 customer")
        rows = page.locator("#customer-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Ann Lee")
        expect(alert).to_have_count(0)


def _secret_key(db: Database, workspace_id: int) -> str:
    with db.transaction() as session:
        return ws.issue_key(session, "secret", workspace_id).key


def test_a_revoked_key_brings_back_the_sign_in_form_which_returns_to_the_page(
    shop: Shop, served: str, browser_page: Page
) -> None:
    page, url = browser_page, served
    mine, colleagues = (
        _secret_key(shop.db, shop.workspace_id),
        _secret_key(shop.db, shop.workspace_id),
    )
    page.goto(url + "/customers?q=ann")
    page.fill("#key", mine)
    page.press("#key", "Enter")
    expect(page.locator("#customer-count")).to_have_text("1 customer")
    # A colleague revokes the key this tab opened the workspace with.
    bearer = {"Authorization": f"Bearer {colleagues}"}
    keys = httpx.get(f"{url}/api/v1/keys", headers=bearer).json()
    (key_id,) = [k["id"] for k in keys if mine.startswith(k["prefix"])]
    assert httpx.delete(f"{url}/api/v1/keys/{key_id}", headers=bearer).status_code == 204
    page.click("#at-risk")
    expect(page.locator("#signed-out-notice")).to_contain_text("Your sign-in has ended")
    expect(page.locator("#login-form")).to_be_visible()
    assert "/customers?" in page.url  # the page the person was on, kept for after
    page.fill("#key", colleagues)
    page.press("#key", "Enter")
    expect(page.locator("h1")).to_have_text("At-risk customers")
    expect(page.locator("#signed-out-notice")).to_have_count(0)


def test_an_expired_session_asks_to_sign_in_again_and_a_sign_out_does_not(
    shop: Shop, served: str, browser_page: Page
) -> None:
    page, url = browser_page, served
    sign_in(page, url + "/customers", "csm@example.com")
    expect(page.locator("#customer-count")).to_have_text("4 customers")
    past = datetime.now(UTC) - timedelta(minutes=1)
    with shop.db.transaction() as session:
        session.execute(update(UserSession).values(expires_at=past))
    page.click("header nav >> text=Segments")
    expect(page.locator("#signed-out-notice")).to_contain_text("Sign in again")
    assert page.url == url + "/segments"
    page.fill("#email", "csm@example.com")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page.locator("#segments h1")).to_have_text("Segments")
    # Signing out on purpose is not an ended sign-in.
    page.click("#sign-out")
    expect(page.locator("#signin-form")).to_be_visible()
    expect(page.locator("#signed-out-notice")).to_have_count(0)


def test_a_refused_request_says_which_field_and_why(served: str, browser_page: Page) -> None:
    page, url = browser_page, served
    sign_in(page, url + "/customers?sort=nonsense", "csm@example.com")
    # The API's 422 names the field; "Invalid request" alone would not say what to change.
    refused = page.locator("#customers p.error")
    expect(refused).to_contain_text("Invalid request (sort: Input should be")
    page.goto(url + "/overview?since=2999-01-01")
    expect(page.locator("#overview p.error").first).to_contain_text(
        "Invalid range (since: must not be after until)"
    )
