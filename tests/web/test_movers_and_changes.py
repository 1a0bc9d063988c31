"""Small things the UX audit found, in Debian's Chromium against the real app over the
overview's seeded workspace (``test_overview.seed``): the movers panel shown "(refreshing)"
asks again until the new reading lands, the 360 lists only changes of health that moved,
and signed differences are written with the minus sign (U+2212) and shares' differences
(a playbook's uplift) in percentage points."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clm.analytics import movers as movers_module
from clm.analytics import retention_trend
from clm.analytics.kept import readings_of
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.journey_steps import tick
from clm.ingest import ingest
from clm.lifecycle.health_inputs import get_scorecard
from clm.store import workspaces
from clm.store.engine import Database
from clm.store.models import Customer, HealthSnapshot
from tests.engage.test_playbooks import NOW, orders, population, stage_changes
from tests.web.browser import console_errors, sign_in_with_key
from tests.web.servers import serving
from tests.web.test_overview import DAY, site  # noqa: F401 - the fixture

MINUS = "\u2212"


def _midnight() -> int:
    return int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def _snapshots(db: Database, customer_id: int, rows: list[tuple[int, float, str]]) -> None:
    """Health snapshots of one customer: (days before today's midnight, score, state), with
    no factor parts (so no reasons: nothing but the score and the state moved)."""
    workspace_id = _workspace(db, customer_id)
    health_id = get_scorecard(db, workspace_id)[0]
    with db.transaction() as session:
        for days, score, state in rows:
            ts = _midnight() - days * DAY
            session.add(HealthSnapshot(
                workspace_id=workspace_id, definition_id=health_id, customer_id=customer_id,
                ts=ts, occurred_at=datetime.fromtimestamp(ts, UTC), score=score, state=state,
                contributions={},
            ))  # fmt: skip


def _workspace(db: Database, customer_id: int) -> int:
    with db.session() as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        return int(customer.workspace_id)


def _gate(monkeypatch: pytest.MonkeyPatch, module: Any, compute: str, kind: str) -> threading.Event:
    """``module.compute`` (a stored reading's computation) waits for the returned gate (open
    at first), and ``module.kind`` may be read again at once (no spacing between refreshes)."""
    opened = threading.Event()
    opened.set()
    direct = getattr(module, compute)

    def slow(*args: Any, **kwargs: Any) -> Any:
        assert opened.wait(60)
        return direct(*args, **kwargs)

    monkeypatch.setattr(module, compute, slow)
    monkeypatch.setattr(module, kind, replace(getattr(module, kind), min_interval=0.0))
    return opened


@pytest.fixture
def movers_gate(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The movers' background reading waits for the gate."""
    opened = _gate(monkeypatch, movers_module, "_reading", "MOVERS")
    yield opened
    opened.set()


@pytest.mark.slow
def test_a_refreshing_movers_panel_updates_without_a_reload(
    site: tuple[str, str, dict[str, int]],  # noqa: F811 - the fixture
    browser_page: Page,
    db: Database,
    movers_gate: threading.Event,
) -> None:
    """After b's health falls 90 -> 40 today the stored movers (a and c fell) are shown
    "(refreshing)" while they are read again; the panel then shows the new reading (a, b and
    c fell) by itself."""
    url, key, ids = site
    page = browser_page
    summary = page.locator("#movers-summary")
    try:
        sign_in_with_key(page, f"{url}/overview", key)
        expect(summary).to_contain_text("Health fell for 2 and rose for 0")
        movers_gate.clear()
        _snapshots(db, ids["b"], [(0, 40.0, "at_risk")])
        page.reload()
        expect(page.locator("#movers-refreshing")).to_have_text("(refreshing)")
        expect(summary).to_contain_text("Health fell for 2 and rose for 0")  # the older reading
        movers_gate.set()
        expect(summary).to_contain_text("Health fell for 3 and rose for 0", timeout=40_000)
        expect(page.locator("#movers-refreshing")).to_have_count(0)
        # b fell 50, more than a's 35: first, with the minus sign
        first = page.locator("#movers-health tbody tr").first
        expect(first).to_contain_text("b@example.com")
        expect(first.locator("td.num .bad")).to_have_text(f"{MINUS}50")
    finally:
        movers_gate.set()
        readings_of(db).settle()
    assert console_errors(page) == []


@pytest.fixture
def retention_gate(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The overview's churn reading waits for the gate."""
    opened = _gate(monkeypatch, retention_trend, "run_report", "RETENTION")
    yield opened
    opened.set()


@pytest.mark.slow
def test_a_refreshing_churn_panel_updates_without_a_reload(
    site: tuple[str, str, dict[str, int]],  # noqa: F811 - the fixture
    browser_page: Page,
    db: Database,
    retention_gate: threading.Event,
) -> None:
    """A new event outdates the stored churn reading: the panel says it is refreshing while it
    is read again, then shows the new reading by itself (it asked again, no reload)."""
    url, key, ids = site
    page = browser_page
    note = page.locator("#retention-refreshing")
    try:
        sign_in_with_key(page, f"{url}/overview", key)
        expect(page.locator("#retention-last")).to_be_visible()
        expect(note).to_have_count(0)
        retention_gate.clear()
        viewed = {"type": "track", "userId": "a", "event": "Product Viewed",
                  "messageId": "late-a", "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
        ingest(db, _workspace(db, ids["a"]), [viewed])
        page.reload()
        expect(note).to_be_visible()
        expect(page.locator("#retention-last")).to_be_visible()  # the older reading meanwhile
        retention_gate.set()
        expect(note).to_have_count(0, timeout=40_000)
        expect(page.locator("#retention-last")).to_be_visible()
    finally:
        retention_gate.set()
        readings_of(db).settle()
    assert console_errors(page) == []


@pytest.mark.slow
def test_the_360_lists_only_changes_of_health_that_moved(
    site: tuple[str, str, dict[str, int]],  # noqa: F811 - the fixture
    browser_page: Page,
    db: Database,
) -> None:
    """b: 90 happy (20 days ago, seeded), then 90.3 happy (no line: 90 -> 90, same state, no
    reason), 60 at risk (a line), 60.2 unhappy (a line: the state changed)."""
    url, key, ids = site
    _snapshots(db, ids["b"], [(19, 90.3, "happy"), (18, 60.0, "at_risk"), (17, 60.2, "unhappy")])
    page = browser_page
    sign_in_with_key(page, f"{url}/customers/{ids['b']}", key)
    lines = page.locator("#health-changes li")
    expect(lines).to_have_count(2)

    def on(days: int) -> str:
        return datetime.fromtimestamp(_midnight() - days * DAY, UTC).date().isoformat()

    expect(lines.nth(0)).to_contain_text(f"{on(17)} 60 → 60")
    expect(lines.nth(0).locator(".pill")).to_have_count(1)  # the new state
    expect(lines.nth(1)).to_contain_text(f"{on(18)} 90 → 60")
    expect(page.locator("#health-changes")).not_to_contain_text("90 → 90")
    assert console_errors(page) == []


@pytest.mark.slow
def test_signed_differences_use_the_minus_sign_and_percentage_points(
    site: tuple[str, str, dict[str, int]],  # noqa: F811 - the fixture
    browser_page: Page,
) -> None:
    """The format helpers every page writes differences with, run in the browser as served:
    a playbook's uplift of 5.0% against 17.6% is -12.6 percentage points (not "-12.6%")."""
    url, key, _ = site
    page = browser_page
    sign_in_with_key(page, f"{url}/overview", key)
    shown = page.evaluate(
        """async () => {
          const f = await import("/lib/format.js");
          return [f.percentagePoints(0.05 - 0.176), f.percentagePoints(0.042),
                  f.percentagePoints(-0.0004), f.percentagePoints(null), f.difference(-1234),
                  f.difference(50), f.difference(0), f.scoreChange(-35.4), f.scoreChange(-0.2),
                  f.signedNumber(-50), f.signedNumber(16.6667), f.signedNumber(-0.004)];
        }"""
    )
    assert shown == [
        f"{MINUS}12.6 pp",
        "+4.2 pp",
        "0 pp",
        "–",
        f"{MINUS}1,234",
        "+50",
        "0",
        f"{MINUS}35",
        "0",
        f"{MINUS}50",
        "+16.67",
        "0",
    ]


def _shown_points(text: str) -> float:
    """A difference as the page writes it ("−41.7 pp", "+4.2 pp"), as a number: the minus
    must be U+2212 and the unit percentage points."""
    match = re.fullmatch(r"([+\u2212]?)([0-9.,]+) pp", text.strip())
    assert match, text
    value = float(match.group(2).replace(",", ""))
    return -value if match.group(1) == MINUS else value


@pytest.mark.slow
def test_a_playbooks_uplift_reads_in_percentage_points_with_the_minus_sign(
    db: Database, browser_page: Page
) -> None:
    """A playbook that does worse than its holdout (one in four treated buy, two in three of
    the holdout): its uplift and 95% interval, recomputed here from the journeys' arms (Wald),
    read "−… pp" on the playbook page, and the page says it is worse than the holdout."""
    ws, ids = population(db, 120)
    book = pb.parse_playbook({
        "name": "convert", "trigger": {"type": "stage_changed", "to": "conversion"},
        "goal": {"event": "Order Completed", "within_days": 30}, "holdout": 0.3,
        "steps": [{"id": "hi", "type": "send", "category": "welcome",
                   "content": {"subject": "Hi", "text": "Hello"}}],
    })  # fmt: skip
    pb.apply_playbook(db, ws, book)
    users = list(ids)
    stage_changes(db, ws, users, "conversion", NOW)
    tick(db, ws, NOW)
    arms = {u: pb.journey_history(db, ws, ids[u])[0].arm for u in users}
    treated = [u for u in users if arms[u] == "treatment"]
    control = [u for u in users if arms[u] == "control"]
    orders(db, ws, treated[::4] + control[::3] + control[1::3], NOW + timedelta(days=3))
    t_p = len(treated[::4]) / len(treated)
    c_p = (len(control[::3]) + len(control[1::3])) / len(control)
    se = math.sqrt(t_p * (1 - t_p) / len(treated) + c_p * (1 - c_p) / len(control))
    uplift = 100 * (t_p - c_p)
    with db.transaction() as session:
        key = workspaces.issue_key(session, "secret", ws).key
    page = browser_page
    with serving(db) as url:
        sign_in_with_key(page, f"{url}/engagement/playbooks/convert", key)
        shown = page.locator("#uplift")
        expect(shown).to_contain_text("worse than the holdout")
        text = shown.inner_text()
    first, interval = text.split("(95% CI ")
    low, high = interval.split(":")[0].split(" to ")
    assert _shown_points(first) == pytest.approx(uplift, abs=0.051)
    assert _shown_points(low) == pytest.approx(uplift - 196 * se, abs=0.06)
    assert _shown_points(high) == pytest.approx(uplift + 196 * se, abs=0.06)
    assert "-" not in text and "%" not in text.replace("95% CI", "")
    assert console_errors(page) == []
