"""Reports, engagement and settings in a real browser (Debian's Chromium driven by
Playwright) against a real server over a small seeded workspace: each report draws its chart
and tables, a playbook is paused and resumed, and a stage model with a mistake shows the
line-numbered error before anything is saved."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clm.analytics.kept import readings_of
from clm.engage.playbooks import service as pb
from clm.ingest import ingest
from clm.lifecycle import run_lifecycle
from clm.store.engine import Database
from tests.analytics.test_report_readings import gate  # noqa: F401 - the fixture
from tests.conftest import Tenant, make_tenant
from tests.web.browser import Shot, console_errors, sign_in_with_key
from tests.web.servers import serving

WELCOME = {
    "name": "welcome",
    "trigger": {"type": "stage_changed", "to": "paying"},
    "holdout": 0.2,
    "steps": [
        {"id": "hello", "type": "send", "category": "onboarding",
         "content": {"subject": "Welcome", "text": "Glad you are here."}},
    ],
}  # fmt: skip


def _events() -> list[dict[str, Any]]:
    """Six customers over three months: visits from two channels, sign-ups, purchases."""
    events: list[dict[str, Any]] = []
    for i in range(6):
        user = f"u{i}"
        month = 1 + i % 3
        medium = "paid_search" if i % 2 else "email"
        stamps = [f"2026-0{month}-0{d}T09:00:00Z" for d in (1, 2, 3)]
        events.append({"type": "page", "userId": user, "timestamp": stamps[0],
                       "context": {"campaign": {"medium": medium, "source": "x"}}})  # fmt: skip
        events.append({"type": "identify", "userId": user, "timestamp": stamps[1],
                       "traits": {"email": f"{user}@example.com"}})  # fmt: skip
        if i < 4:
            events.append({"type": "track", "userId": user, "event": "Order Completed",
                           "properties": {"revenue": 10 * (i + 1)},
                           "timestamp": stamps[2]})  # fmt: skip
    for n, event in enumerate(events):
        event["messageId"] = f"m{n}"
    return events


@pytest.fixture
def shop(db: Database) -> Iterator[tuple[str, Tenant]]:
    """The seeded shop served over each backend (SQLite; PostgreSQL in its own schema)."""
    tenant = make_tenant(db, "shop")
    ingest(db, tenant.id, _events())
    run_lifecycle(db, tenant.id)
    pb.apply_playbook(db, tenant.id, pb.parse_playbook(WELCOME))
    with serving(db) as url:
        yield url, tenant


REPORT_CHARTS = {
    "funnel": "#chart-funnel",
    "churn_retention": "#chart-retention",
    "cohorts": "#chart-cohorts",
    "rfm": "#chart-rfm",
    "attribution": "#chart-attribution-0",
    "acquisition": "#chart-acquisition",
    "feedback": None,  # no survey answers in this shop: the page says so (#no-chart)
}


@pytest.mark.slow
def test_each_report_draws_its_chart_and_tables(
    shop: tuple[str, Tenant],
    browser_page: Page,
    shot: Shot,
) -> None:
    url, tenant = shop
    page = browser_page
    sign_in_with_key(page, url + "/reports", tenant.secret_key)
    for name, chart in REPORT_CHARTS.items():
        page.click(f"#reports .tabs a[href='/reports/{name}']")
        expect(page).to_have_url(f"{url}/reports/{name}")
        expect(page.locator("#report-period")).to_be_visible()
        expect(page.locator(".report-table").first).to_be_visible()
        if chart is not None:
            expect(page.locator(f"{chart} canvas").first).to_be_visible()
        else:
            expect(page.locator("#no-chart")).to_contain_text("no survey answers")
        shot(f"report-{name}")
    # The funnel's first table counts the six customers the shop has, stage by stage.
    page.goto(url + "/reports/funnel")
    first = page.locator(".report-table").first
    expect(first.locator("tbody tr").first).to_be_visible()
    # A deep link with parameters fills the form and runs the report with them.
    page.goto(url + "/reports/churn_retention?granularity=quarter")
    expect(page.locator("#report-params select[name=granularity]")).to_have_value("quarter")
    expect(page.locator("#chart-retention canvas").first).to_be_visible()
    # A CSV per table, with the table's own header row.
    with page.expect_download() as download:
        page.locator(".report-table .csv").first.click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    header = page.locator(".report-table").first.locator("thead th").all_inner_texts()
    assert text.splitlines()[0] == ",".join(header)
    assert console_errors(page) == []


@pytest.mark.slow
def test_a_report_says_computing_then_refreshing_and_never_shows_an_error(
    shop: tuple[str, Tenant],
    browser_page: Page,
    shot: Shot,
    db: Database,
    gate: threading.Event,  # noqa: F811
) -> None:
    """A first reading that takes long shows "computing…" and then the report (the page asks
    again); after new events the stored report is shown "as of <time>, refreshing" while it
    is read again, then the new one. The server runs in this process, so the test holds the
    background computation at a gate."""
    url, tenant = shop
    page = browser_page
    try:
        sign_in_with_key(page, url + "/reports/rfm", tenant.secret_key)
        expect(page.locator("#report-computing")).to_contain_text("Computing")
        shot("report-computing", loading=True)
        gate.set()
        expect(page.locator("#chart-rfm canvas").first).to_be_visible(timeout=30_000)
        expect(page.locator("#report-computing")).to_have_count(0)
        expect(page.locator("#report-refreshing")).to_have_count(0)
        gate.clear()
        ingest(db, tenant.id, [{"type": "track", "userId": "u5", "event": "Order Completed",
                                "properties": {"revenue": 70}, "messageId": "late-u5",
                                "timestamp": "2026-03-05T09:00:00Z"}])  # fmt: skip
        page.reload()
        refreshing = page.locator("#report-refreshing")
        expect(refreshing).to_contain_text("refreshing")
        expect(refreshing).to_contain_text("as of ")
        expect(page.locator("#chart-rfm canvas").first).to_be_visible()  # the older reading
        shot("report-refreshing")
        gate.set()
        expect(refreshing).to_have_count(0, timeout=30_000)  # the new reading, asked again
    finally:
        gate.set()
        readings_of(db).settle()
    assert console_errors(page) == []


@pytest.mark.slow
def test_a_playbook_is_paused_and_resumed_from_the_engagement_page(
    shop: tuple[str, Tenant],
    browser_page: Page,
    shot: Shot,
    db: Database,
) -> None:
    url, tenant = shop
    page = browser_page
    sign_in_with_key(page, url + "/engagement", tenant.secret_key)
    row = page.locator("tr[data-playbook=welcome]")
    expect(row.locator("[data-status]")).to_have_text("active")
    row.locator("button").click()
    expect(row.locator("[data-status]")).to_have_text("paused")
    assert {p.name: p.status for p in pb.list_playbooks(db, tenant.id)} == {"welcome": "paused"}
    row.get_by_role("link", name="welcome").click()
    expect(page).to_have_url(f"{url}/engagement/playbooks/welcome")
    expect(page.locator("#playbook-report")).to_contain_text("welcome: report")
    shot("engagement-playbook-report")
    row.locator("button").click()
    expect(row.locator("[data-status]")).to_have_text("active")
    assert console_errors(page) == []


@pytest.mark.slow
def test_a_stage_model_with_a_mistake_shows_the_line_before_anything_is_saved(
    shop: tuple[str, Tenant],
    browser_page: Page,
    shot: Shot,
    db: Database,
) -> None:
    url, tenant = shop
    page = browser_page
    sign_in_with_key(page, url + "/settings", tenant.secret_key)
    editor = page.locator("#stage-yaml")
    expect(editor).not_to_have_value("")
    original = editor.input_value()
    # The model as it is previews to today's counts: nothing would change.
    expect(page.locator("#model-preview")).to_be_visible()
    # In the model's order (classic.yaml), on PostgreSQL too, where the preview job's result
    # is jsonb and its counts come back ordered by the stage names' length.
    stages = ["reach", "acquisition", "conversion", "retention", "loyalty", "churned"]
    expect(page.locator("#model-preview tbody td:first-child")).to_have_text(stages)
    expect(page.locator("#check-state")).to_have_text("Valid.")
    shot("settings-stage-model")
    # A misspelt key on line 3 of a small model: the error names line 3, Save is disabled.
    mistake = "name: broken\nstages:\n  - name: lead\n    initial: true\n    rules: x\n"
    editor.fill(mistake)
    errors = page.locator("#model-errors")
    expect(errors).to_contain_text("line 5")
    expect(errors).to_contain_text("rules")
    expect(page.locator("#save-model")).to_be_disabled()
    shot("settings-stage-model-error")
    # Back to the stored model: valid again; nothing was ever saved.
    editor.fill(original)
    expect(page.locator("#check-state")).to_have_text("Valid.")
    from clm.lifecycle.catalog import list_definitions

    assert [d.name for d in list_definitions(db, tenant.id)].count("broken") == 0
    page.click("#settings .tabs a[href='/settings/keys']")
    page.fill("#key-form input[name=name]", "reporting")
    page.click("#key-form button")
    expect(page.locator("#new-key code")).to_contain_text("clm_rk_")
    expect(page.locator("#keys")).to_contain_text("reporting")
    shot("settings-keys")
    assert console_errors(page) == []


@pytest.mark.slow
def test_a_testimonial_is_approved_from_the_queue_and_the_other_tabs_open(
    shop: tuple[str, Tenant],
    browser_page: Page,
    shot: Shot,
    db: Database,
) -> None:
    from datetime import UTC, datetime

    from clm.engage.referrals import testimonials
    from clm.engage.referrals.testimonials import TestimonialSubmit
    from tests.engage.test_testimonials import token_of

    url, tenant = shop
    now = datetime.now(UTC)
    with db.transaction() as session:
        links = testimonials.form_links(session, tenant.id, [1, 2], now)
    for who, text in ((1, "Fast and friendly"), (2, "Fine")):
        body = TestimonialSubmit(token=token_of(links[who]), text=text, consent=True, rating=5)
        testimonials.submit(db, body, now)
    page = browser_page
    sign_in_with_key(page, url + "/engagement/testimonials", tenant.secret_key)
    queue = page.locator("#testimonial-queue")
    expect(queue.locator("tbody tr")).to_have_count(2)
    shot("engagement-testimonials")
    queue.locator("tr", has_text="Fast and friendly").get_by_role("button", name="Approve").click()
    expect(queue.locator("tbody tr")).to_have_count(1)
    decided = {t.text: t.status for t in testimonials.list_testimonials(db, tenant.id)}
    assert decided == {"Fast and friendly": "approved", "Fine": "pending"}
    for tab, shown in (
        ("referrals", "No referral waits"),
        ("tasks", "No open tasks"),
        ("surveys", "No surveys yet"),
    ):
        page.click(f"#engagement .tabs a[href='/engagement/{tab}']")
        expect(page.locator("#engagement")).to_contain_text(shown)
        shot(f"engagement-empty-{tab}")
    assert console_errors(page) == []
