"""The engagement page in a real browser (Debian's Chromium driven by Playwright) against a real
server: a playbook written in the editor with a mistake shows the line, is fixed, saved and
paused; journeys in flight show their step and wait; a flagged referral is approved with its
fraud reason in view; the NPS trend is drawn and its score matches a hand calculation; a task
is assigned and completed. Screenshots at 1280 and 400 px wide, no console errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.schedule import run_due
from clm.engage.referrals import service as referrals
from clm.engage.schemas import Policy
from clm.engage.surveys import service as surveys
from clm.engage.surveys.schemas import SurveyDefinition
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.models import Customer, EngageTask
from tests.conftest import Tenant
from tests.engage.test_console import BROKEN, answer
from tests.engage.test_referrals import PROGRAM, T0, referred
from tests.web.browser import Shot, console_errors, sign_in_with_key
from tests.web.test_pages import shop  # noqa: F401 - the fixture

UPGRADED = {
    "name": "upgraded",
    "trigger": {"type": "event", "event": "Plan Upgraded"},
    "steps": [
        {"id": "thanks", "type": "send", "category": "account", "purpose": "transactional",
         "content": {"subject": "Thanks", "text": "Thanks for upgrading"}},
        {"id": "settle-in", "type": "wait", "days": 7},
        {"id": "tips", "type": "send", "category": "onboarding", "purpose": "transactional",
         "content": {"subject": "Tips", "text": "Three things to try"}},
    ],
}  # fmt: skip

# NPS answers (month, score) from the shop's six customers: by hand, January 10, 9, 3 ->
# (2 - 1) / 3 = +33.3; February 8, 6 -> (0 - 1) / 2 = -50; March 10 -> +100. Overall 10, 9,
# 10 promoters (3), 8 passive, 3 and 6 detractors (2): 100 * (3 - 2) / 6 = +16.67.
ANSWERS = [(1, 10), (1, 9), (1, 3), (2, 8), (2, 6), (3, 10)]


@pytest.fixture
def engaged(shop: tuple[str, Tenant], db: Database) -> Iterator[tuple[str, Tenant]]:  # noqa: F811
    url, tenant = shop
    ws = tenant.id
    now = datetime.now(UTC)
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
        rows = session.scalars(select(Customer).where(Customer.workspace_id == ws)).all()
        people = {c.user_id: c.id for c in rows}
    # Two customers upgrade: each gets the thank-you and waits a week before the tips.
    pb.apply_playbook(db, ws, pb.parse_playbook(UPGRADED))
    ingest(db, ws, [{"type": "track", "event": "Plan Upgraded", "userId": user,
                     "messageId": f"up-{user}", "timestamp": now.isoformat()}
                    for user in ("u0", "u1")])  # fmt: skip
    run_due(db, ws, now)
    # A referral from u0's link by someone whose e-mail is u0's own mailbox: flagged.
    referrals.set_program(db, ws, PROGRAM)
    code = next(c.code for c in referrals.issue_codes(db, ws, T0, stages=[])
                if c.customer_id == people["u0"])  # fmt: skip
    referred(db, ws, code, "ann", email="u0+friend@example.com")
    referrals.process(db, ws, T0 + timedelta(days=2))
    # An NPS survey answered over three months (the detractors open follow-up tasks).
    surveys.save_survey(db, ws, SurveyDefinition(key="nps", type="nps"))
    for i, (month, score) in enumerate(ANSWERS):
        at = datetime(2026, month, 10, 12, tzinfo=UTC)
        comment = "Terrible support, very disappointed." if score == 3 else None
        answer(db, ws, "nps", people[f"u{i}"], score, at, comment=comment)
    yield url, tenant


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_engagement_editor_journeys_referrals_surveys_and_tasks(
    engaged: tuple[str, Tenant],
    browser_page: Page,
    shot: Shot,
    db: Database,
    width: int,
) -> None:
    url, tenant = engaged
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_with_key(page, url + "/engagement", tenant.secret_key)
    expect(page.locator("tr[data-playbook=welcome]")).to_be_visible()

    # Write a playbook with a misspelt key: the problem names line 14, the gutter marks it,
    # and Save stays disabled until it is fixed.
    page.click("#new-playbook")
    expect(page).to_have_url(f"{url}/engagement/new")
    editor = page.locator("#playbook-yaml")
    editor.fill(BROKEN)
    errors = page.locator("#playbook-errors")
    expect(errors).to_contain_text("line 14")
    expect(errors).to_contain_text("unknown key 'dayz'; did you mean 'days'?")
    expect(page.locator(".gutter .bad")).to_have_text(["14"])
    expect(page.locator("#save-playbook")).to_be_disabled()
    shot("engagement-editor-error")
    errors.get_by_role("button", name="line 14").click()  # the caret goes to the line
    page.wait_for_function(
        "() => { const t = document.querySelector('#playbook-yaml');"
        " return t.selectionEnd > t.selectionStart; }"
    )
    selected = page.evaluate(
        "() => { const t = document.querySelector('#playbook-yaml');"
        " return t.value.slice(t.selectionStart, t.selectionEnd); }"
    )
    assert selected.strip() == "dayz: 3"
    editor.fill(BROKEN.replace("dayz", "days"))
    expect(page.locator("#check-state")).to_have_text("Valid: check-in, 3 steps.")
    expect(page.locator(".gutter .bad")).to_have_count(0)
    page.click("#save-playbook")
    expect(page).to_have_url(f"{url}/engagement/playbooks/check-in")
    row = page.locator("tr[data-playbook=check-in]")
    expect(row.locator("[data-status]")).to_have_text("active")
    row.locator("[data-toggle]").click()
    expect(row.locator("[data-status]")).to_have_text("paused")
    statuses = {p.name: p.status for p in pb.list_playbooks(db, tenant.id)}
    assert statuses["check-in"] == "paused"
    # Editing opens the stored YAML; the back button returns to the playbook.
    row.get_by_role("link", name="Edit").click()
    expect(page).to_have_url(f"{url}/engagement/playbooks/check-in/edit")
    expect(editor).to_have_value(re.compile(r"^name: check-in\n"))
    expect(page.locator("#check-state")).to_contain_text("Valid")
    shot("engagement-editor")
    page.go_back()
    expect(page).to_have_url(f"{url}/engagement/playbooks/check-in")

    # Journeys in flight: both upgraders sent their thank-you and wait a week for the tips.
    page.goto(url + "/engagement/playbooks/upgraded")
    journeys = page.locator("#journey-table tbody tr")
    expect(journeys).to_have_count(2)
    for i in range(2):
        expect(journeys.nth(i)).to_contain_text("tips (3 of 3)")
        expect(journeys.nth(i)).to_contain_text("until ")
    shot("engagement-journeys")

    # The referral program: the flagged referral with its fraud reason, approved.
    page.click("#engagement .tabs a[href='/engagement/referrals']")
    queue = page.locator("#referral-queue")
    expect(queue.locator("tbody tr")).to_have_count(1)
    expect(queue).to_contain_text("email alias")
    expect(page.locator("#referral-stats")).to_contain_text("waiting for review")
    shot("engagement-referrals")
    queue.get_by_role("button", name="Approve").click()
    expect(page.locator("#engagement")).to_contain_text("No referral waits for review")
    [decided] = referrals.list_referrals(db, tenant.id)
    assert decided.status == "qualified"

    # The NPS: +16.7 overall as worked out above, and the trend drawn month by month.
    page.click("#engagement .tabs a[href='/engagement/surveys']")
    expect(page.locator("#survey-value")).to_have_text("+16.67")
    expect(page.locator("#chart-survey-trend canvas").first).to_be_visible()
    expect(page.locator("#survey-comments")).to_contain_text("negative")
    shot("engagement-surveys")

    # The detractors' follow-ups: assign one, complete the other.
    page.click("#engagement .tabs a[href='/engagement/tasks']")
    tasks = page.locator("#tasks tbody tr")
    expect(tasks).to_have_count(2)
    first = tasks.first
    first.locator("input[name=owner]").fill("sam@shop.test")
    first.get_by_role("button", name="Assign").click()
    # Stored: the form now shows the owner as saved, nothing left to assign.
    expect(first.get_by_role("button", name="Assign")).to_be_disabled()
    expect(first.locator("input[name=owner]")).to_have_value("sam@shop.test")
    shot("engagement-tasks")
    tasks.nth(1).get_by_role("button", name="Complete").click()
    expect(tasks).to_have_count(1)
    with db.session() as session:
        done = session.scalars(select(EngageTask).order_by(EngageTask.id)).all()
    assert [(t.owner, t.status) for t in done] == [("sam@shop.test", "open"), (None, "done")]
    assert console_errors(page) == []
