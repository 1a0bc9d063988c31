"""The overview's data: customers per stage and health state over time, this week's movers
and the revenue at risk, on small hand-written histories and state rows whose numbers are
worked out below by hand, on SQLite and PostgreSQL; the stage counts are also checked point
by point against ``stage_counts`` (one "latest transition at or before" query per instant, a
second implementation)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import delete, select

from clm.analytics.movers import MoversQuery, movers
from clm.analytics.revenue_at_risk import revenue_at_risk
from clm.analytics.trends import TrendQuery, trends
from clm.errors import ValidationError
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.history import replace_history
from clm.lifecycle.queries import stage_counts
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import CustomerState, HealthSnapshot, StageTransition
from tests.analytics.logs import event, load, ts
from tests.conftest import LiveServer, make_tenant

# (user, when, from, to, kind): e and a start before the range, d after it.
MOVES = [
    ("e", "2023-11-01", None, "lead", "entry"),
    ("a", "2023-12-20", None, "lead", "entry"),
    ("b", "2024-01-03", None, "lead", "entry"),
    ("a", "2024-01-10", "lead", "trial", "forward"),
    ("b", "2024-01-14T23:59:59", "lead", "trial", "forward"),  # the last second of week 2
    ("c", "2024-01-16", None, "lead", "entry"),
    ("e", "2024-01-17", "lead", "churned", "exit"),
    ("a", "2024-01-20", "trial", "paying", "forward"),
    ("c", "2024-01-25", "lead", "churned", "exit"),
    ("d", "2024-02-05", None, "lead", "entry"),
]
# (user, when, score, state); b's two snapshots share a second: the later written counts.
HEALTH = [
    ("a", "2024-01-02", 80.0, "happy"),
    ("b", "2024-01-05", 30.0, "unhappy"),
    ("b", "2024-01-05", 35.0, "unhappy"),
    ("a", "2024-01-12T06:00:00", 50.0, "at_risk"),
    ("c", "2024-01-18", 90.0, "happy"),
]
STAGES = ["lead", "trial", "paying", "loyal", "churned"]


def _write(db: Database, slug: str = "acme") -> tuple[int, dict[str, int]]:
    messages = [event(u, "2023-10-01", "Signed Up", f"{slug}-{u}") for u in "abcde"]
    workspace_id, customers, definition_id = load(db, messages, slug=slug)
    rows = [
        {"workspace_id": workspace_id, "definition_id": definition_id,
         "customer_id": customers[user], "ts": ts(when),
         "occurred_at": datetime.fromtimestamp(ts(when), UTC), "from_stage": source,
         "to_stage": target, "kind": kind, "rule": f"rule:{target}", "cause_message_id": None,
         "announced": True}
        for user, when, source, target, kind in MOVES
    ]  # fmt: skip
    health_id = get_scorecard(db, workspace_id)[0]
    with db.transaction() as session:
        replace_history(session, definition_id, rows)
        for user, when, score, state in HEALTH:
            session.add(HealthSnapshot(
                workspace_id=workspace_id, definition_id=health_id, customer_id=customers[user],
                ts=ts(when), occurred_at=datetime.fromtimestamp(ts(when), UTC), score=score,
                state=state, contributions={},
            ))  # fmt: skip
            session.flush()  # ids in list order: b's second snapshot is the later one
    return workspace_id, customers


def _column(series: dict[str, list[int]], n: int) -> dict[str, int]:
    return {name: counts[n] for name, counts in series.items() if counts[n]}


def test_stage_and_health_counts_at_the_end_of_each_week(db: Database) -> None:
    workspace_id, _ = _write(db)
    query = TrendQuery(since=date(2024, 1, 1), until=date(2024, 1, 28), grain="week")
    result = trends(db, workspace_id, query, now=datetime(2024, 6, 1, tzinfo=UTC))

    assert [p.label for p in result.points] == ["2024-01-01", "2024-01-08", "2024-01-15",
                                                "2024-01-22"]  # fmt: skip
    assert [p.at for p in result.points] == [
        datetime(2024, 1, d, 23, 59, 59, tzinfo=UTC) for d in (7, 14, 21, 28)
    ]
    assert list(result.stages) == STAGES  # the model's order, every stage listed
    by_hand = [
        {"lead": 3},  # a, b, e
        {"lead": 1, "trial": 2},  # e; a (10th), b (at the week's last second)
        {"lead": 1, "trial": 1, "paying": 1, "churned": 1},  # c; b; a; e
        {"trial": 1, "paying": 1, "churned": 2},  # b; a; e, c
    ]
    assert [_column(result.stages, n) for n in range(4)] == by_hand
    for n, point in enumerate(result.points):  # the second implementation, point by point
        assert stage_counts(db, workspace_id, point.at) == {s: result.stages[s][n] for s in STAGES}

    assert [_column(result.health, n) for n in range(4)] == [
        {"happy": 1, "unhappy": 1},  # a 80; b 35 (the later of its two snapshots)
        {"at_risk": 1, "unhappy": 1},  # a 50; b 35
        {"happy": 1, "at_risk": 1, "unhappy": 1},  # + c 90
        {"happy": 1, "at_risk": 1, "unhappy": 1},
    ]
    assert result.mean_health == [57.5, 42.5, round(175 / 3, 2), round(175 / 3, 2)]


def test_month_and_day_grains_and_a_range_ending_now(db: Database) -> None:
    workspace_id, _ = _write(db)
    month = trends(db, workspace_id,
                   TrendQuery(since=date(2023, 12, 15), until=date(2024, 1, 31), grain="month"),
                   now=datetime(2024, 6, 1, tzinfo=UTC))  # fmt: skip
    assert [p.label for p in month.points] == ["2023-12", "2024-01"]
    assert [_column(month.stages, n) for n in range(2)] == [
        {"lead": 2},  # e, a
        {"trial": 1, "paying": 1, "churned": 2},
    ]
    # today is 10 January, noon: the range's later days are not there yet; the last point is now
    now = datetime(2024, 1, 10, 12, tzinfo=UTC)
    days = TrendQuery(since=date(2024, 1, 8), until=date(2024, 1, 12), grain="day")
    day = trends(db, workspace_id, days, now=now)
    assert [p.label for p in day.points] == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert day.points[-1].at == now
    assert [_column(day.stages, n) for n in range(3)] == [
        {"lead": 3},
        {"lead": 3},
        {"lead": 2, "trial": 1},  # a moved on the 10th at 00:00
    ]
    # nothing before the first history: zeros, not missing series
    empty = trends(db, workspace_id, TrendQuery(since=date(2023, 1, 1), until=date(2023, 1, 3),
                                                grain="day"), now=now)  # fmt: skip
    assert all(counts == [0, 0, 0] for counts in empty.stages.values())
    assert empty.mean_health == [None, None, None]


def test_a_range_that_is_backwards_or_too_long_is_a_field_error(db: Database) -> None:
    workspace_id, _ = _write(db)
    with pytest.raises(ValidationError) as backwards:
        trends(db, workspace_id, TrendQuery(since=date(2024, 2, 1), until=date(2024, 1, 1)))
    assert backwards.value.errors[0].loc == ("since",)
    with pytest.raises(ValidationError) as long:
        trends(db, workspace_id, TrendQuery(since=date(2000, 1, 1), until=date(2024, 1, 1),
                                            grain="day"))  # fmt: skip
    assert long.value.errors[0].loc == ("grain",)


def test_this_weeks_movers(db: Database) -> None:
    workspace_id, customers = _write(db)
    # the week (12 Jan 00:00, 19 Jan 00:00]
    found = movers(db, workspace_id, MoversQuery(days=7), now=datetime(2024, 1, 19, tzinfo=UTC))
    # a fell 80 -> 50 inside the week; c was first scored in it (no "before": not a mover);
    # b's last score is from before the week
    assert (found.health_fell, found.health_rose) == (1, 0)
    [a] = found.health
    assert (a.customer_id, a.score_before, a.score_now, a.change) == (customers["a"], 80, 50, -30)
    assert (a.state_before, a.state_now) == ("happy and stable", "happy but at risk")
    assert a.email is None and a.user_id == "a"
    # b up (lead -> trial at 14 Jan 23:59:59), c new (16 Jan), e down (churned 17 Jan)
    assert found.stage_moves == {"up": 1, "down": 1, "new": 1}
    assert [(m.customer_id, m.from_stage, m.to_stage, m.direction) for m in found.stages] == [
        (customers["e"], "lead", "churned", "down"),
        (customers["b"], "lead", "trial", "up"),
    ]
    assert {(f.from_stage, f.to_stage, f.moves) for f in found.flows} == {
        ("lead", "trial", 1),
        ("lead", "churned", 1),
        (None, "lead", 1),
    }


def test_the_api_serves_the_same_numbers_to_its_workspace_only(live_server: LiveServer) -> None:
    workspace_id, _ = _write(live_server.db)
    other_id, _ = _write(live_server.db, slug="other")
    with live_server.db.transaction() as session:
        key = ws.issue_key(session, "secret", workspace_id).key
        reader = ws.issue_key(session, "read", other_id).key
    url = f"{live_server.url}/api/v1/overview"
    params = {"since": "2024-01-01", "until": "2024-01-28", "grain": "week"}
    assert httpx.get(f"{url}/trends", params=params).status_code == 401
    answer = httpx.get(f"{url}/trends", params=params, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    assert answer.json()["stages"]["churned"] == [0, 0, 1, 2]
    assert answer.json()["health"]["happy"] == [1, 0, 1, 1]
    # another workspace's read key sees its own (identical) history, not twice as much
    theirs = httpx.get(f"{url}/trends", params=params,
                       headers={"Authorization": f"Bearer {reader}"})  # fmt: skip
    assert theirs.json()["stages"] == answer.json()["stages"]
    bad = httpx.get(f"{url}/trends", params={"since": "2024-02-01", "until": "2024-01-01"},
                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "since"
    assert httpx.get(f"{url}/movers", params={"days": 0},
                     headers={"Authorization": f"Bearer {key}"}).status_code == 422  # fmt: skip
    # the kept funnel is the funnel report's own steps
    auth = {"Authorization": f"Bearer {key}"}
    funnel = httpx.get(f"{url}/funnel", headers=auth).json()
    report = httpx.get(f"{live_server.url}/api/v1/reports/funnel", headers=auth).json()
    assert funnel["ready"] and funnel["steps"] == report["steps"] and funnel["steps"]
    moved = httpx.get(f"{url}/movers", headers={"Authorization": f"Bearer {key}"})
    assert moved.status_code == 200 and moved.json()["stage_moves"] == {"up": 0, "down": 0,
                                                                         "new": 0}  # fmt: skip


def test_revenue_at_risk_sums_the_at_risk_rows_of_the_stored_state(db: Database) -> None:
    mine, theirs = make_tenant(db, "acme"), make_tenant(db, "other")
    now = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [  # (workspace, customer, health, 12-month CLV, revenue so far)
        (mine.id, 1, "at_risk", 100.0, 50.0),
        (mine.id, 2, "unhappy", None, 20.0),  # no prediction: counted, adds no CLV
        (mine.id, 3, "unhappy", 40.5, 0.0),
        (mine.id, 4, "happy", 300.0, 500.0),
        (mine.id, 5, None, 60.0, 0.0),  # no health score
        (theirs.id, 6, "at_risk", 1000.0, 1000.0),  # another workspace
    ]
    with db.transaction() as session:
        for workspace, customer, health, clv, revenue in rows:
            session.add(CustomerState(
                workspace_id=workspace, customer_id=customer, health_state=health, clv_12m=clv,
                revenue=revenue, purchases=0, updated_at=now,
            ))  # fmt: skip
    found = revenue_at_risk(db, mine.id)
    assert (found.customers, found.without_prediction) == (3, 1)  # 1, 2 and 3
    assert (found.clv_12m, found.revenue) == (140.5, 70.0)  # 100 + 40.5; 50 + 20 + 0
    assert found.share_of_clv == round(140.5 / (100 + 40.5 + 300 + 60), 4)
    empty = revenue_at_risk(db, make_tenant(db, "new").id)
    assert (empty.customers, empty.clv_12m, empty.share_of_clv) == (0, 0.0, None)


def test_the_stored_reading_equals_a_fresh_one_and_follows_new_history(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clm.analytics import trends as module
    from clm.analytics.kept import readings_of

    monkeypatch.setattr(module, "PAST", replace(module.PAST, min_interval=0.0))  # no grace

    workspace_id, customers = _write(db)
    query = TrendQuery(since=date(2024, 1, 1), until=date(2024, 1, 28), grain="week")
    stored = trends(db, workspace_id, query)  # no ``now``: the stored days, read once
    fresh = trends(db, workspace_id, query, now=datetime.now(UTC))
    assert (stored.stages, stored.health, stored.mean_health) == (
        fresh.stages, fresh.health, fresh.mean_health
    )  # fmt: skip
    assert stored.current and stored.computed_at is not None
    # c comes back on 27 January: a row written after the stored reading, added at once
    definition_id = module.active_stage_model(db, workspace_id)[0]
    with db.transaction() as session:
        session.add(StageTransition(
            workspace_id=workspace_id, definition_id=definition_id,
            customer_id=customers["c"], ts=ts("2024-01-27"),
            occurred_at=datetime.fromtimestamp(ts("2024-01-27"), UTC), from_stage="churned",
            to_stage="lead", kind="reactivation", rule="rule:lead", announced=True,
        ))  # fmt: skip
    added = trends(db, workspace_id, query)
    assert added.current and added.computed_at == stored.computed_at
    assert added.stages["churned"] == [0, 0, 1, 1] and added.stages["lead"] == [3, 1, 1, 1]
    # e's exit rewritten away (a recompute deletes stored rows): the stored reading is not
    # current; the answer says so and it is read again in the background
    with db.transaction() as session:
        session.execute(delete(StageTransition).where(
            StageTransition.customer_id == customers["e"], StageTransition.to_stage == "churned"
        ))  # fmt: skip
    outdated = trends(db, workspace_id, query)
    assert not outdated.current
    readings_of(db).settle()
    again = trends(db, workspace_id, query)
    assert again.current
    assert again.stages["churned"] == [0, 0, 0, 0] and again.stages["lead"] == [3, 1, 2, 2]


def test_the_stored_movers_equal_a_fresh_reading_and_follow_a_new_move(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clm.analytics import movers as module
    from clm.analytics.kept import readings_of

    monkeypatch.setattr(module, "MOVERS", replace(module.MOVERS, min_interval=0.0))  # no grace

    workspace_id, customers = _write(db)
    kept = movers(db, workspace_id, MoversQuery(days=7))  # no ``now``: read once, then stored
    fresh = movers(db, workspace_id, MoversQuery(days=7), now=datetime.now(UTC))
    assert kept.stage_moves == fresh.stage_moves == {"up": 0, "down": 0, "new": 0}
    # c comes back yesterday: the stored answer is served, marked, while it is read again
    definition_id = module.active_stage_model(db, workspace_id)[0]
    yesterday = int(datetime.now(UTC).timestamp()) - 86_400
    with db.transaction() as session:
        session.add(StageTransition(
            workspace_id=workspace_id, definition_id=definition_id,
            customer_id=customers["c"], ts=yesterday,
            occurred_at=datetime.fromtimestamp(yesterday, UTC), from_stage="churned",
            to_stage="lead", kind="reactivation", rule="rule:lead", announced=True,
        ))  # fmt: skip
    outdated = movers(db, workspace_id, MoversQuery(days=7))
    assert not outdated.current and outdated.stage_moves == kept.stage_moves
    readings_of(db).settle()
    again = movers(db, workspace_id, MoversQuery(days=7))
    assert again.stage_moves["up"] + again.stage_moves["down"] == 1
    assert [m.customer_id for m in again.stages] == [customers["c"]]


def test_a_health_mover_says_what_moved_the_score(db: Database) -> None:
    """A fall in the week is often time passing (a purchase leaving the 365-day window), not a
    new event: each mover names the factors that moved their score."""
    workspace_id, customers = _write(db)
    before = {
        "recency": {"value": 10.0, "weight": 50.0, "points": 45.0},
        "nps": {"value": 9, "weight": 50.0, "points": 35.0},
    }  # 80 points
    after = {"recency": {"value": 200.0, "weight": 50.0, "points": 20.0},
             "nps": {"value": 9, "weight": 50.0, "points": 30.0}}  # 50 points  # fmt: skip
    with db.transaction() as session:
        for when, parts in (("2024-01-02", before), ("2024-01-12T06:00:00", after)):
            row = session.scalars(
                select(HealthSnapshot).where(
                    HealthSnapshot.customer_id == customers["a"], HealthSnapshot.ts == ts(when)
                )
            ).one()
            row.contributions = parts
    found = movers(db, workspace_id, MoversQuery(days=7), now=datetime(2024, 1, 19, tzinfo=UTC))
    # By hand: weights unchanged, so each factor's part is its change in points:
    # recency 20 - 45 = -25, NPS 30 - 35 = -5; the biggest first, in the scorecard's words
    [a] = found.health
    assert a.moved_by == ["Days since last purchase: 200 days (\u221225 points)",
                          "Last NPS score: 9 of 10 (\u22125 points)"]  # fmt: skip
