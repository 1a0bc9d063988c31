"""Settings in Chromium against a real server on SQLite and PostgreSQL: a scorecard weight
changed shows who would change state and its backtest beside the active scorecard, then is
saved as a new version; quiet hours set wrong show the error at the field, and nothing is
stored until they are right; an owner signed in adds a member and changes a role, a key is
told it cannot. No console errors; screenshots at 1280 and 400 px."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.engage import repository as engage_repo
from clm.ingest import ingest
from clm.lifecycle import run_lifecycle
from clm.lifecycle.catalog import list_definitions
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.conftest import Tenant, make_tenant
from tests.web.browser import Shot, refused_once, sign_in, sign_in_with_key
from tests.web.servers import serving


def _history() -> list[dict[str, Any]]:
    """Fifteen months of 40 buyers: half buy monthly to the end, half stop after month 9-12."""
    start = datetime.now(UTC) - timedelta(days=450)
    events: list[dict[str, Any]] = []
    for i in range(40):
        months = 15 if i < 20 else 9 + i % 4
        for m in range(0, months, 1 + i % 3):
            when = (start + timedelta(days=30 * m + i)).isoformat()
            events.append({"type": "track", "userId": f"c{i}", "event": "Order Completed",
                           "messageId": f"c{i}-{m}", "properties": {"revenue": 5 + i},
                           "timestamp": when})  # fmt: skip
    return events


@pytest.fixture
def shop(db: Database) -> Iterator[tuple[str, Tenant, Database]]:
    tenant = make_tenant(db, "shop")
    ingest(db, tenant.id, _history())
    run_lifecycle(db, tenant.id)
    add_user(db, "owner@example.com", tenant.id, Role.OWNER)
    add_user(db, "viewer@example.com", tenant.id, Role.VIEWER)
    with serving(db) as url:
        yield url, tenant, db


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_a_weight_is_changed_previewed_backtested_and_saved(
    shop: tuple[str, Tenant, Database], browser_page: Page, shot: Shot, width: int
) -> None:
    url, tenant, db = shop
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_with_key(page, url + "/settings/health", tenant.secret_key)
    factors = page.locator("#scorecard-factors tbody tr")
    expect(factors.first).to_be_visible()
    expect(page.locator("#scorecard-state")).to_have_text("No changes.")
    shot("settings-health")
    # A mistake first: a negative weight is named at once, Save stays off, nothing is asked.
    weight = page.locator("input[name=weight-frequency]")
    weight.fill("-2")
    expect(page.locator("#scorecard-errors")).to_contain_text("frequency: a weight from 0 to 1,000")
    expect(page.locator("#save-scorecard")).to_be_disabled()
    # Frequency weighted 5 times less: the preview says how many of the 40 change state.
    weight.fill("8")
    expect(page.locator("#scorecard-preview")).to_contain_text("of 40 customers would change state")
    expect(page.locator("#scorecard-state")).to_have_text("Valid.")
    page.click("#run-backtest")
    result = page.locator("#backtest-result")
    expect(result).to_be_visible(timeout=90_000)
    table = result.locator("table.backtest").first
    names = table.locator("tbody td:first-child").all_inner_texts()
    assert names[:2] == ["health score (this edit)", "active scorecard"], names
    assert {"recency", "frequency", "random"} <= {n.split(" beats")[0].strip() for n in names}
    expect(result.locator("#chart-backtest-lift canvas")).to_be_visible()
    shot("settings-health-backtest")
    page.click("#save-scorecard")
    expect(page.locator("#scorecard-saved")).to_contain_text("Saved default v2")
    versions = [(d.version, d.active) for d in list_definitions(db, tenant.id, "health")]
    assert versions == [(1, False), (2, True)]
    expect(page.locator("input[name=weight-frequency]")).to_have_value("8")


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_quiet_hours_set_wrong_show_the_error_at_the_field(
    shop: tuple[str, Tenant, Database], browser_page: Page, shot: Shot, width: int
) -> None:
    url, tenant, db = shop
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_with_key(page, url + "/settings/guardrails", tenant.secret_key)
    expect(page.locator("#quiet-start")).to_have_value("21:00")
    expect(page.locator("#channels-configured")).to_contain_text("email: not configured")
    page.fill("#quiet-start", "25:00")
    page.fill("#quiet-zone", "Mars/Olympus")
    page.click("#save-policy")
    expect(page.locator("#err-quiet_hours\\.start")).to_be_visible()
    expect(page.locator("#quiet-start")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#err-quiet_hours\\.default_timezone")).to_contain_text(
        "unknown time zone 'Mars/Olympus'"
    )
    refused_once(page)  # the PUT, on purpose
    shot("settings-guardrails-error")
    with db.session() as session:  # nothing was stored
        assert engage_repo.get_policy(session, tenant.id).quiet_hours.start.hour == 21  # type: ignore[union-attr]
    page.fill("#quiet-start", "22:30")
    page.fill("#quiet-zone", "Europe/Paris")
    page.fill("input[name=cap-0-max]", "2")
    page.click("#save-policy")
    expect(page.locator("#policy-saved")).to_contain_text("Saved")
    expect(page.locator("#err-quiet_hours\\.start")).to_have_count(0)
    with db.session() as session:
        policy = engage_repo.get_policy(session, tenant.id)
    assert policy.quiet_hours is not None
    assert (policy.quiet_hours.start.isoformat(), policy.quiet_hours.default_timezone) == (
        "22:30:00",
        "Europe/Paris",
    )
    assert policy.caps[0].max_messages == 2
    shot("settings-guardrails")


@pytest.mark.slow
def test_an_owner_adds_a_member_and_a_key_is_told_it_cannot(
    shop: tuple[str, Tenant, Database], browser_page: Page, shot: Shot
) -> None:
    url, tenant, db = shop
    page = browser_page
    sign_in_with_key(page, url + "/settings/members", tenant.secret_key)
    expect(page.locator("#members-denied")).to_contain_text("a key never does")
    page.evaluate("sessionStorage.clear()")
    sign_in(page, url + "/settings/members", "owner@example.com")
    rows = page.locator("#members tbody tr")
    expect(rows).to_have_count(2)
    page.fill("#member-form input[name=email]", "new@example.com")
    page.select_option("#member-form select[name=role]", "marketer")
    page.click("#member-form button")
    expect(rows).to_have_count(3)
    page.select_option("tr[data-member='viewer@example.com'] select", "customer_success")
    expect(page.locator("#settings")).to_contain_text("viewer@example.com is now customer success")
    # From the keyboard: arrows on a closed role select only move the choice (Chromium fires
    # "change" at each; each was a stored, audited role), Enter stores the one chosen.
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.post_data or "") if r.method == "PUT" else None)
    role = page.locator("tr[data-member='new@example.com'] select")
    role.focus()
    page.keyboard.press("ArrowDown")  # customer success
    page.keyboard.press("ArrowDown")  # viewer
    expect(role).to_have_value("viewer")
    with page.expect_response(lambda r: r.request.method == "PUT"):
        page.keyboard.press("Enter")
    expect(page.locator("#settings")).to_contain_text("new@example.com is now viewer")
    assert len(puts) == 1 and '"viewer"' in puts[0], puts
    page.keyboard.press("Tab")  # leaving it after: nothing more is sent
    expect(page.locator("#settings")).to_contain_text("new@example.com is now viewer")
    assert len(puts) == 1, puts
    page.keyboard.press("Shift+Tab")
    expect(role).to_be_focused()
    page.keyboard.press("ArrowUp")  # customer success ...
    page.keyboard.press("Escape")  # ... no: viewer again
    expect(role).to_have_value("viewer")
    page.keyboard.press("Tab")
    shot("settings-members")
    from clm.accounts import users

    with db.session() as session:
        roles = {u.email: u.memberships[0].role for u in users.list_users(session, tenant.id)}
    assert roles == {
        "owner@example.com": "owner",
        "viewer@example.com": "customer_success",
        "new@example.com": "viewer",
    }
    assert len(puts) == 1, puts
