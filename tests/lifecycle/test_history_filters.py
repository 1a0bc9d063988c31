"""The customer list's history filters open exactly the customers behind the overview's
numbers, on test_trends' hand-written history (worked out by hand below), on SQLite and
PostgreSQL: who stood in a stage or health state at a past instant (``as_of``), who moved up,
down, new or into a stage in a window, and whose score fell in it; the movers' counts equal
the list's totals for the same window, and a customer first scored in it (a first health
score, or a first P(alive)) is new in both, not a mover."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from clm.analytics.movers import MoversQuery, movers
from clm.lifecycle.health_inputs import get_scorecard
from clm.store import workspaces as ws
from clm.store.models import HealthSnapshot
from tests.analytics.logs import event, load, ts
from tests.analytics.test_trends import _write
from tests.conftest import LiveServer


def test_history_filters_list_the_customers_behind_the_numbers(live_server: LiveServer) -> None:
    workspace_id, customers = _write(live_server.db)
    _write(live_server.db, slug="other")  # the same history in another workspace: not listed
    with live_server.db.transaction() as session:
        key = ws.issue_key(session, "read", workspace_id).key
    by_id = {v: k for k, v in customers.items()}

    def listed(**params: str) -> set[str]:
        answer = httpx.get(f"{live_server.url}/api/v1/customer-list", params=params,
                           headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] == len(body["items"])
        return {by_id[row["id"]] for row in body["items"]}

    week = {1: "2024-01-07T23:59:59Z", 2: "2024-01-14T23:59:59Z", 3: "2024-01-21T23:59:59Z"}
    # stages at the end of each week (test_trends' table): e, a, b lead; then a, b trial
    # (b at the week's last second); then c lead, e churned
    assert listed(stage="lead", as_of=week[1]) == {"a", "b", "e"}
    assert listed(stage="trial", as_of=week[2]) == {"a", "b"}
    assert listed(stage="lead", as_of=week[2]) == {"e"}
    assert listed(stage="churned", as_of=week[3]) == {"e"}
    assert listed(stage="lead,paying", as_of=week[3]) == {"c", "a"}
    assert listed(stage="lead") == {"d"}  # now (no as_of): d entered in February; c churned
    # health: a 80 then 50 (12 Jan); b 30 then 35 in one second (the later counts); c 90
    assert listed(health_state="happy", as_of=week[1]) == {"a"}
    assert listed(health_state="at_risk", as_of=week[2]) == {"a"}
    assert listed(health_state="unhappy", as_of=week[2]) == {"b"}
    assert listed(health_state="happy", as_of=week[3]) == {"c"}
    assert listed(stage="trial", health_state="unhappy", as_of=week[2]) == {"b"}
    # the week (12 Jan 00:00, 19 Jan 00:00]: b up (lead -> trial), e down (churned), c new
    window = {"moved_since": "2024-01-12T00:00:00Z", "moved_until": "2024-01-19T00:00:00Z"}
    assert listed(moved="up", **window) == {"b"}
    assert listed(moved="down", **window) == {"e"}
    assert listed(moved="new", **window) == {"c"}
    assert listed(moved_to="churned", **window) == {"e"}
    assert listed(moved_to="trial,lead", **window) == {"b", "c"}
    assert listed(**window) == {"b", "c", "e"}
    # a's score fell 80 -> 50 in it; c was first scored in it (no "before"); b not touched
    assert listed(health_fell="true", **window) == {"a"}
    # the movers of that window say the same numbers
    found = movers(live_server.db, workspace_id, MoversQuery(days=7),
                   now=datetime(2024, 1, 19, tzinfo=UTC))  # fmt: skip
    assert found.stage_movers == {"up": 1, "down": 1, "new": 1}
    assert found.health_fell == 1

    bad = httpx.get(f"{live_server.url}/api/v1/customer-list", params={"moved": "up"},
                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "moved_since"
    worse = httpx.get(f"{live_server.url}/api/v1/customer-list",
                      params={"as_of": "yesterday", "moved": "sideways"},
                      headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert worse.status_code == 422
    assert {e["loc"][-1] for e in worse.json()["errors"]} == {"as_of", "moved"}


# The week (12 Jan 00:00, 19 Jan 00:00] again. (user, first P(alive) scores, health snapshots)
# and what each is, by hand: a first P(alive) in the week joins the scorecard's factors, so
# the score moves with no move of the customer's: new, like a first health score.
FIRST_SCORES = [
    ("f", ["2024-01-15"], [("2024-01-02", 70.0), ("2024-01-15", 55.0)]),  # new: -15
    ("g", ["2024-01-01", "2024-01-15"], [("2024-01-02", 70.0), ("2024-01-15", 60.0)]),  # -10
    ("h", ["2024-01-15"], [("2024-01-02", 40.0), ("2024-01-15", 60.0)]),  # new: +20
    ("i", ["2024-01-20"], [("2024-01-02", 70.0), ("2024-01-14", 65.0)]),  # -5 (P(alive) later)
    ("j", ["2024-01-12"], [("2024-01-02", 70.0), ("2024-01-13", 60.0)]),  # -10 (at the start)
    ("k", ["2024-01-15"], [("2024-01-15", 30.0)]),  # new: first health score in the week
    ("m", [], [("2024-01-02", 50.0), ("2024-01-16", 70.0)]),  # +20, never predicted
    ("n", ["2024-01-15"], [("2024-01-02", 70.0), ("2024-01-15", 50.0)]),  # new: -20
]


def _first_scores(live_server: LiveServer, slug: str) -> tuple[int, dict[str, int]]:
    """The customers above; n's P(alive) arrives on an anonymous id it is known by."""
    messages = [event(u, "2023-10-01", "Signed Up", f"{slug}-{u}") for u, _, _ in FIRST_SCORES]
    known = {"type": "identify", "userId": "n", "anonymousId": "anon-n"}
    messages.append({**known, "messageId": f"{slug}-n-anon", "timestamp": "2023-10-02T00:00:00Z"})
    for user, scored, _ in FIRST_SCORES:
        for n, when in enumerate(scored):
            message = event(user, when, "Prediction Scored", f"{slug}-{user}-p{n}", p_alive=0.3)
            if user == "n":
                message = {**message, "anonymousId": "anon-n"}
                del message["userId"]
            messages.append(message)
    workspace_id, customers, _ = load(live_server.db, messages, slug=slug)
    health_id = get_scorecard(live_server.db, workspace_id)[0]
    with live_server.db.transaction() as session:
        for user, _, snapshots in FIRST_SCORES:
            for when, score in snapshots:
                session.add(HealthSnapshot(
                    workspace_id=workspace_id, definition_id=health_id,
                    customer_id=customers[user], ts=ts(when),
                    occurred_at=datetime.fromtimestamp(ts(when), UTC), score=score,
                    state="happy" if score >= 50 else "at_risk", contributions={},
                ))  # fmt: skip
    return workspace_id, customers


def test_a_first_score_in_the_window_is_new_in_the_movers_and_the_list(
    live_server: LiveServer,
) -> None:
    workspace_id, customers = _first_scores(live_server, "first")
    _first_scores(live_server, "other")  # the same in another workspace: counted apart
    with live_server.db.transaction() as session:
        key = ws.issue_key(session, "read", workspace_id).key
    by_id = {v: k for k, v in customers.items()}
    window = {"moved_since": "2024-01-12T00:00:00Z", "moved_until": "2024-01-19T00:00:00Z"}
    answer = httpx.get(f"{live_server.url}/api/v1/customer-list",
                       params={"health_fell": "true", **window},
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert {by_id[row["id"]] for row in answer.json()["items"]} == {"g", "i", "j"}
    found = movers(live_server.db, workspace_id, MoversQuery(days=7),
                   now=datetime(2024, 1, 19, tzinfo=UTC))  # fmt: skip
    assert (found.health_fell, found.health_rose) == (3, 1)  # g, i, j; m
    assert sorted((m.change, by_id[m.customer_id]) for m in found.health) == [
        (-10, "g"), (-10, "j"), (-5, "i"),
    ]  # fmt: skip
