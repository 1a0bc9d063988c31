"""Pages offer only what the signed-in role may do, in Debian's Chromium against a real server.

A viewer (read only) signs in and, page by page, finds no New, Edit, Save, Pause, Delete or
note form, and no console error (before, each of those buttons was shown and answered 403). An
owner, on the same pages, finds each of them. What each role may do is written here by hand
from the README's role table, not read from ``clm.accounts.roles``."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from clm.accounts import Role
from clm.lifecycle import saved_segments
from clm.lifecycle.conditions import Condition
from clm.store.engine import Database
from clm.store.models import Customer
from tests.accounts.conftest import add_user
from tests.conftest import Tenant
from tests.web.browser import Shot, console_errors, sign_in
from tests.web.test_pages import shop  # noqa: F401 - the fixture

# (path, selector of an action that changes something) on each page; the permission the
# route behind the action needs is in the comment.
ACTIONS = [
    ("/engagement", "#new-playbook"),  # marketing
    ("/engagement", "[data-playbook=welcome] [data-toggle]"),  # marketing: pause
    ("/engagement", "[data-playbook=welcome] a:text-is('Edit')"),  # marketing
    ("/engagement/new", "#save-playbook"),  # marketing
    ("/engagement/surveys", "#new-survey-button"),  # marketing
    ("/segments/{segment}", "#edit-segment"),  # marketing
    ("/segments/{segment}", "#delete-segment"),  # marketing
    ("/customers/{customer}", "#note-form"),  # support
    ("/settings/stage-model", "#save-model"),  # configure
    ("/settings/health", "#save-scorecard"),  # configure
    ("/settings/health", "#run-backtest"),  # configure
    ("/settings/guardrails", "#save-policy"),  # configure
    ("/settings/guardrails", "#edit-channel-email"),  # configure
    ("/settings/keys", "#key-form"),  # configure
    ("/settings/members", "#member-form"),  # members
]
# The same pages' read-only view, which each role sees: the page did load for the viewer.
SEEN = {
    "/engagement": "#playbooks",
    "/engagement/new": "#editor-denied",
    "/engagement/surveys": "#engagement",
    "/segments/{segment}": "#segment-size",
    "/customers/{customer}": "#note-denied",
    "/settings/stage-model": "#stage-yaml",
    "/settings/health": "#scorecard-factors",
    "/settings/guardrails": "#policy-form",
    "/settings/keys": "#settings-denied",
    "/settings/members": "#members-denied",
}


def _fill(path: str, segment: int, customer: int) -> str:
    return path.format(segment=segment, customer=customer)


@pytest.fixture
def places(shop: tuple[str, Tenant], db: Database) -> tuple[str, int, int]:  # noqa: F811
    url, tenant = shop
    add_user(db, "viewer@example.com", tenant.id, Role.VIEWER)
    add_user(db, "owner@example.com", tenant.id, Role.OWNER)
    body = saved_segments.SegmentCreate(
        name="buyers", conditions=[Condition(attr="purchases", op="gte", value=1)]
    )
    segment = saved_segments.create_segment(db, tenant.id, body, "test").id
    with db.session() as session:
        customer = session.scalars(
            select(Customer.id).where(Customer.workspace_id == tenant.id).order_by(Customer.id)
        ).first()
    assert customer is not None
    return url, segment, customer


@pytest.mark.slow
def test_a_viewer_sees_no_action_it_may_not_take_and_no_console_error(
    places: tuple[str, int, int],
    browser_page: Page,
    shot: Shot,
) -> None:
    url, segment, customer = places
    page = browser_page
    sign_in(page, url + "/overview", "viewer@example.com")
    me = page.evaluate("fetch('/api/v1/workspace').then((r) => r.json())")
    assert (me["role"], me["permissions"]) == ("viewer", ["read"])
    for path in SEEN:
        page.goto(url + _fill(path, segment, customer))
        expect(page.locator(SEEN[path]).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        for where, action in ACTIONS:
            if where == path:
                expect(page.locator(action)).to_have_count(0)
        assert console_errors(page) == [], path
    # The stage model is shown, not editable; the denial names the permission and the role.
    page.goto(url + "/settings/stage-model")
    expect(page.locator("#stage-yaml")).to_have_attribute("readonly", "")
    expect(page.locator(".denied")).to_have_text(
        "Needs the configure permission, which the viewer role lacks."
    )
    page.goto(url + f"/customers/{customer}")
    expect(page.locator("#note-denied")).to_contain_text("support permission")
    shot("role-viewer-customer")
    page.goto(url + "/engagement")
    expect(page.locator("#playbooks")).to_be_visible()
    shot("role-viewer-engagement")
    assert console_errors(page) == []


@pytest.mark.slow
def test_an_owner_sees_every_action(
    places: tuple[str, int, int],
    browser_page: Page,
) -> None:
    url, segment, customer = places
    page = browser_page
    sign_in(page, url + "/overview", "owner@example.com")
    me = page.evaluate("fetch('/api/v1/workspace').then((r) => r.json())")
    staff = ["audit", "configure", "marketing", "members", "read", "support"]
    assert (me["role"], me["permissions"]) == ("owner", staff)
    for path, action in ACTIONS:
        page.goto(url + _fill(path, segment, customer))
        expect(page.locator(action)).to_have_count(1)
    expect(page.locator(".denied")).to_have_count(0)
    page.wait_for_load_state("networkidle")
    assert console_errors(page) == []


@pytest.mark.slow
def test_customer_success_sees_todays_stage_counts_beside_the_model(
    shop: tuple[str, Tenant],  # noqa: F811 - the fixture
    db: Database,
    browser_page: Page,
    shot: Shot,
) -> None:
    """The preview of a changed stage model needs the configure permission: a customer-success
    person (read and support) had an empty "What would change" panel beside the read-only
    model. Now that panel is today's customers per stage, saying why there is no preview."""
    url, tenant = shop
    add_user(db, "cs@example.com", tenant.id, Role.CUSTOMER_SUCCESS)
    page = browser_page
    sign_in(page, url + "/settings/stage-model", "cs@example.com")
    counts = page.evaluate("fetch('/api/v1/lifecycle/counts').then((r) => r.json())")["stages"]
    assert sum(counts.values()) > 0
    expect(page.locator("#stage-yaml")).to_have_attribute("readonly", "")
    panel = page.locator("#model-now")
    expect(panel.locator("h2")).to_have_text("Customers per stage now")
    expect(page.locator("#preview-denied")).to_have_text(
        "What a changed model would move is previewed for those who may edit it."
    )
    expect(page.locator(".denied")).to_have_text(  # under the model: which permission
        "Needs the configure permission, which the customer success role lacks."
    )
    rows = panel.locator("tbody tr")
    expect(rows).to_have_count(len(counts))
    shown = {
        row.locator("td").nth(0).inner_text(): row.locator("td").nth(1).inner_text()
        for row in rows.all()
    }
    assert sorted(shown.values()) == sorted(f"{n:,}" for n in counts.values())
    expect(page.locator("text=What would change")).to_have_count(0)
    shot("role-customer-success-stage-model")
    assert console_errors(page) == []
