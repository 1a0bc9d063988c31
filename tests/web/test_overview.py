"""The overview in Debian's Chromium against the real app on a seeded workspace: every panel's
numbers as worked out by hand from the history written below, each count clicking through to
the customer list showing exactly those customers, the date range in the URL (the back button
restores it), no console errors, and screenshots at 1280 and 400 px wide."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from clm.lifecycle.current_state import rebuild_state
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.history import replace_history
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import CustomerState, HealthScore, HealthSnapshot
from tests.analytics.logs import load
from tests.web.browser import Shot, console_errors, sign_in_with_key
from tests.web.servers import serving

DAY = 86_400
# Days before today's midnight (UTC). Now: a trial, b paying, c churned, d and e leads.
MOVES = [  # (user, days ago, from, to, kind)
    ("a", 60, None, "lead", "entry"),
    ("b", 40, None, "lead", "entry"),
    ("c", 30, None, "lead", "entry"),
    ("b", 20, "lead", "paying", "skip"),
    ("d", 10, None, "lead", "entry"),
    ("a", 3, "lead", "trial", "forward"),  # this week: up
    ("c", 2, "lead", "churned", "exit"),  # this week: down
    ("e", 1, None, "lead", "entry"),  # this week: new
]
HEALTH = [  # (user, days ago, score, state); the last of each is the current score
    ("a", 30, 80.0, "happy"),
    ("b", 20, 90.0, "happy"),
    ("c", 10, 50.0, "at_risk"),
    ("d", 5, 60.0, "at_risk"),  # first scored this week: no "before", not a mover
    ("a", 2, 45.0, "at_risk"),  # fell 35 this week
    ("c", 1, 20.0, "unhappy"),  # fell 30 this week
]
# a's fall in the scorecard's words: days since last purchase 5 -> 40 took 35 of 80 points
PARTS = {("a", 30): {"recency": {"value": 5.0, "weight": 100.0, "points": 80.0}},
         ("a", 2): {"recency": {"value": 40.0, "weight": 100.0, "points": 45.0}}}  # fmt: skip
CLV = {"a": 120.0, "c": 30.0, "b": 500.0}  # d has no prediction


def seed(db: Database) -> tuple[str, dict[str, int]]:
    """The workspace: (its secret key, user -> customer id)."""
    messages = [  # each customer with an email to be listed by
        {"type": "identify", "userId": u, "messageId": f"m-{u}",
         "timestamp": "2024-01-01T00:00:00Z", "traits": {"email": f"{u}@example.com"}}
        for u in "abcde"
    ]  # fmt: skip
    midnight = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    bought = datetime.fromtimestamp(midnight - 20 * DAY, UTC).isoformat()
    messages.append({"type": "track", "userId": "b", "messageId": "m-order", "timestamp": bought,
                     "event": "Order Completed", "properties": {"revenue": 40}})  # fmt: skip
    workspace_id, ids, definition_id = load(db, messages)

    def at(days: int) -> tuple[int, datetime]:
        ts = midnight - days * DAY
        return ts, datetime.fromtimestamp(ts, UTC)

    transitions = [
        {"workspace_id": workspace_id, "definition_id": definition_id, "customer_id": ids[u],
         "ts": at(d)[0], "occurred_at": at(d)[1], "from_stage": f, "to_stage": t, "kind": k,
         "rule": f"rule:{t}", "cause_message_id": None, "announced": True}
        for u, d, f, t, k in MOVES
    ]  # fmt: skip
    health_id = get_scorecard(db, workspace_id)[0]
    with db.transaction() as session:
        replace_history(session, definition_id, transitions)
        current: dict[str, tuple[int, float, str]] = {}
        for user, days, score, state in HEALTH:
            ts, when = at(days)
            session.add(HealthSnapshot(
                workspace_id=workspace_id, definition_id=health_id, customer_id=ids[user], ts=ts,
                occurred_at=when, score=score, state=state,
                contributions=PARTS.get((user, days), {}),
            ))  # fmt: skip
            current[user] = (ts, score, state)
        for user, (ts, score, state) in current.items():
            session.add(HealthScore(
                workspace_id=workspace_id, definition_id=health_id, customer_id=ids[user],
                scored_at=ts, score=score, state=state, contributions={}, next_due=None,
            ))  # fmt: skip
        key = ws.issue_key(session, "secret", workspace_id).key
    rebuild_state(db, workspace_id)
    with db.transaction() as session:  # the predictions' output, as a refit would store it
        for user, clv in CLV.items():
            session.execute(
                update(CustomerState)
                .where(CustomerState.customer_id == ids[user])
                .values(clv_12m=clv)
            )
    return key, ids


@pytest.fixture
def site(db: Database) -> Iterator[tuple[str, str, dict[str, int]]]:
    key, ids = seed(db)
    with serving(db) as url:
        yield url, key, ids


def _listed(page: Any) -> set[str]:
    """The customers the list shows (their emails), once it has loaded."""
    expect(page.locator("#customer-table")).to_be_visible()
    return {
        t.strip() for t in page.locator("#customer-table tbody td:first-child a").all_inner_texts()
    }


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_overview_numbers_and_their_customers(
    site: tuple[str, str, dict[str, int]], browser_page: Page, shot: Shot, width: int
) -> None:
    url, key, ids = site
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_with_key(page, f"{url}/overview", key)

    expect(page.locator("#stat-customers")).to_have_text("5")
    expect(page.locator("#stat-revenue")).to_have_text("$40")  # b's one order
    # stages now: d and e leads, a trial, b paying, c churned
    stages = {"lead": "2", "trial": "1", "paying": "1", "loyal": "0", "churned": "1"}
    for stage, n in stages.items():
        expect(page.locator("#stages .bar", has_text=stage).locator(".n")).to_have_text(n)
    health = {"happy and stable": "1", "happy but at risk": "2", "unhappy": "1"}  # b; a, d; c
    for state, n in health.items():
        expect(page.locator("#health .bar", has_text=state).locator(".n")).to_have_text(n)
    # at risk or unhappy: a, c, d; their CLV 120 + 30 (d has none); b's 500 is not at risk
    expect(page.locator("#stat-at-risk")).to_have_text("3")
    expect(page.locator("#stat-revenue-at-risk")).to_have_text("$150")
    expect(page.locator(".card", has=page.locator("#stat-revenue-at-risk"))).to_contain_text(
        "23.1% of all customers' CLV; 1 without a prediction"  # 150 / 650
    )
    # this week: a fell 80 -> 45, c 50 -> 20 (d first scored this week is no mover)
    expect(page.locator("#movers-summary")).to_contain_text("Health fell for 2 and rose for 0")
    expect(page.locator("#movers-summary")).to_contain_text("1 moved up a stage, 1 down, and 1")
    falls = page.locator("#movers-health tbody tr")
    expect(falls).to_have_count(2)
    expect(falls.nth(0)).to_contain_text("a@example.com")
    expect(falls.nth(0).locator("td").nth(1)).to_contain_text("\u221235")  # a real minus
    expect(falls.nth(0)).to_contain_text("Days since last purchase: 40 days (\u221235 points)")
    expect(falls.nth(1)).to_contain_text("c@example.com")
    moves = page.locator("#movers-stages tbody tr")
    expect(moves.nth(0)).to_contain_text("c@example.com")  # the latest first
    expect(moves.nth(0)).to_contain_text("lead → churned")
    expect(moves.nth(1)).to_contain_text("trial")
    for chart in ("#chart-stages", "#chart-health", "#chart-retention"):
        expect(page.locator(f"{chart} canvas").first).to_be_visible()
    # the churn report's last whole month: b, the one buyer, bought 20 days ago
    expect(page.locator("#retention-last")).to_be_visible()
    shot("overview-panels")

    # a count clicks through to exactly the customers behind it
    page.locator("#stages .bar", has_text="lead").locator(".n").click()
    expect(page).to_have_url(f"{url}/customers?stage=lead")
    assert _listed(page) == {"d@example.com", "e@example.com"}
    page.go_back()
    page.click("#stat-at-risk")
    expect(page.locator("#customer-count")).to_have_text("3 customers")
    assert _listed(page) == {"a@example.com", "c@example.com", "d@example.com"}
    page.go_back()
    page.locator("#movers-health a", has_text="a@example.com").click()
    expect(page).to_have_url(f"{url}/customers/{ids['a']}")
    page.go_back()

    # the date range lives in the URL; the back button restores the weekly view
    expect(page.locator("#range select[name=grain]")).to_have_value("week")
    page.select_option("#range select[name=grain]", "month")  # applies at once
    expect(page).to_have_url(f"{url}/overview?grain=month")
    expect(page.locator("#chart-stages canvas").first).to_be_visible()
    page.go_back()
    expect(page).to_have_url(f"{url}/overview")
    expect(page.locator("#range select[name=grain]")).to_have_value("week")
    assert console_errors(page) == []


def _count_then_list(page: Any, link: Any) -> tuple[int, set[str]]:
    """The number a link shows, and the customers the list shows after following it."""
    shown = int(link.inner_text().rsplit(" ", 1)[-1].replace(",", ""))
    link.click()
    expect(page.locator("#customer-count")).to_have_text(
        f"{shown} {'customer' if shown == 1 else 'customers'}"
    )
    return shown, _listed(page)


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_movers_and_past_points_click_through_to_exactly_their_customers(
    site: tuple[str, str, dict[str, int]], browser_page: Page, shot: Shot, width: int
) -> None:
    url, key, _ = site
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    since = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
    sign_in_with_key(page, f"{url}/overview?grain=day&since={since}", key)

    # this week's movers (by hand, above): fell a and c; up a; down c; new e
    for link, customers in (("#movers-fell", {"a", "c"}), ("#movers-up", {"a"}),
                            ("#movers-down", {"c"}), ("#movers-new", {"e"})):  # fmt: skip
        shown, listed = _count_then_list(page, page.locator(link))
        assert listed == {f"{u}@example.com" for u in customers} and shown == len(customers)
        expect(page.locator("#filter-chips")).to_contain_text("UTC")
        if link == "#movers-fell":
            shot("customers-movers")
        page.go_back()

    # a click on the stage chart 25 days ago picks that day: a, b and c were leads then (b
    # went on 20 days ago, d came 10 days ago); only a had a score (happy, 30 days ago)
    day = (datetime.now(UTC) - timedelta(days=25)).date().isoformat()
    chart = page.locator("#chart-stages")
    expect(chart.locator("canvas").first).to_be_visible()
    chart.scroll_into_view_if_needed()
    options = page.locator("#stages-point-select option").all_inner_texts()
    index = options.index(day)
    x, y = page.evaluate(
        "([el, i]) => el.chart.convertToPixel({gridIndex: 0}, [i, 0])",
        [chart.element_handle(), index],
    )
    chart.click(position={"x": x, "y": y - 10})
    expect(page.locator("#stages-point-select")).to_have_value(str(index))
    expect(page.locator("#stages-point")).to_contain_text("lead: 3")
    shot("overview-point")
    shown, listed = _count_then_list(page, page.locator("#stages-point a", has_text="lead"))
    assert listed == {"a@example.com", "b@example.com", "c@example.com"} and shown == 3
    expect(page.locator("#filter-chips")).to_contain_text("as of")
    page.go_back()
    # the health chart's point from the keyboard: the select, then the link
    page.select_option("#health-point-select", str(index))
    shown, listed = _count_then_list(
        page, page.locator("#health-point a", has_text="happy and stable")
    )
    assert listed == {"a@example.com"} and shown == 1
    assert console_errors(page) == []


@pytest.mark.slow
def test_the_customer_list_at_400_px_is_cards_sortable_by_keyboard(
    site: tuple[str, str, dict[str, int]], browser_page: Page, shot: Shot
) -> None:
    """At 400 px the list shows each customer as a card (no sideways scrolling), its sort
    buttons still there and usable from the keyboard."""
    url, key, _ = site
    page = browser_page
    page.set_viewport_size({"width": 400, "height": 900})
    sign_in_with_key(page, f"{url}/customers", key)
    expect(page.locator("#customer-table tbody tr")).to_have_count(5)
    wide = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " document.querySelector('#customer-table').parentElement.scrollWidth,"
        " document.querySelector('#customer-table').parentElement.clientWidth]"
    )
    assert wide[0] <= wide[1] and wide[2] <= wide[3], wide
    # each cell on a line of its own, labelled: a card
    cell = page.locator("#customer-table tbody tr").first.locator("td[data-label='stage']")
    assert cell.evaluate("e => getComputedStyle(e).display") == "block"
    # sort by CLV from the keyboard: b 500, a 120, c 30 (d and e have none)
    page.locator("#customer-table button.sort", has_text="CLV").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{url}/customers?sort=clv&order=desc")
    first = page.locator("#customer-table tbody tr td:first-child a")
    expect(first.nth(0)).to_have_text("b@example.com")
    expect(first.nth(1)).to_have_text("a@example.com")
    expect(first.nth(2)).to_have_text("c@example.com")
    shot("customers-cards")
    assert console_errors(page) == []
