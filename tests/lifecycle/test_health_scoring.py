"""Current health scores: silence against the customer's own rhythm, decay with time, exit
stages, missing data, ``next_due`` and the snapshot against the reference, worked by hand."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from clm.ingest.service import ingest
from clm.lifecycle import apply_stage_model, run_lifecycle, shipped_model_text
from clm.lifecycle.catalog import save_definition
from clm.lifecycle.health import score
from clm.lifecycle.health_current import health_due, score_health
from clm.lifecycle.health_service import health_history, health_now
from clm.lifecycle.loader import default_scorecard_text, load_scorecard
from clm.lifecycle.reference import feature_values
from clm.lifecycle.snapshot import feature_snapshot
from clm.store.engine import Database
from clm.store.models import Customer, HealthScore
from tests.lifecycle.logs import DAY, T0, as_log_events, at, message, new_workspace

CADENCE_CARD = """\
name: rhythm
factors:
  cadence: {kind: cadence, axis: risk, weight: 50, best: 0, worst: 8, prior_gaps: 2}
  recency: {feature: days_since_last_purchase, axis: risk, weight: 50, best: 0, worst: 100}
"""

PURCHASES = [
    # a buys every 10 days (own gap 10, 2 repeats); b twice 30 days apart; c once
    message("a", 0, "a1", "Order Completed", revenue=10),
    message("a", 10 * DAY, "a2", "Order Completed", revenue=10),
    message("a", 20 * DAY, "a3", "Order Completed", revenue=10),
    message("b", 0, "b1", "Order Completed", revenue=10),
    message("b", 30 * DAY, "b2", "Order Completed", revenue=10),
    message("c", 5 * DAY, "c1", "Order Completed", revenue=10),
]


def _customers(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {u: c for u, c in session.execute(select(Customer.user_id, Customer.id))}


def _stored(db: Database, customer: int) -> HealthScore:
    with db.session() as session:
        row = session.scalars(select(HealthScore).where(HealthScore.customer_id == customer)).one()
        session.expunge(row)
        return row


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_a_quiet_customer_decays_against_their_own_rhythm(db: Database, engine: str) -> None:
    workspace_id = new_workspace(db)
    save_definition(db, workspace_id, "health", CADENCE_CARD)
    ingest(db, workspace_id, PURCHASES)
    ids = _customers(db)
    # Population rhythm: repeat buyers' spans over their repeats, (20 + 30) / (2 + 1) = 16.667
    # days. a's typical gap: (20 + 2 x 16.667) / (2 + 2) = 13.333 days.
    # Day 40: a silent 20 days = 1.5 gaps -> cadence 50 x (1 - 1.5 / 8) = 40.625; recency
    # 50 x (1 - 20 / 100) = 40: 80.625. Day 60: 3 gaps -> 31.25; 30: 61.25.
    # c bought once (day 5): the population's gap; day 40: 35 / 16.667 = 2.1 gaps -> 36.875;
    # recency 35 -> 32.5: 69.375.
    first = score_health(db, workspace_id, now=at(40 * DAY), engine=engine)  # type: ignore[arg-type]
    assert first.scored == 3
    assert _stored(db, ids["a"]).score == pytest.approx(80.625)
    assert _stored(db, ids["c"]).score == pytest.approx(69.375)
    # the same customer read through the reference (their own events, one by one) agrees
    now = health_now(db, workspace_id, ids["a"], at(40 * DAY))
    assert now is not None and now.score == pytest.approx(80.62, abs=0.01)
    assert sum(f.points for f in now.factors) == pytest.approx(now.score, abs=0.02)
    later = score_health(db, workspace_id, now=at(60 * DAY), engine=engine)  # type: ignore[arg-type]
    assert _stored(db, ids["a"]).score == pytest.approx(61.25)
    assert later.history_rows == 3  # every score dropped by at least a whole point
    history = health_history(db, workspace_id, ids["a"], at(60 * DAY))
    assert [h.score for h in history] == pytest.approx([80.625, 61.25])


def test_next_due_is_when_the_score_next_moves(db: Database) -> None:
    workspace_id = new_workspace(db)
    save_definition(db, workspace_id, "health", CADENCE_CARD)
    ingest(db, workspace_id, PURCHASES)
    ids = _customers(db)
    score_health(db, workspace_id, now=at(40 * DAY))
    # a loses 50 / 8 / 13.333 = 0.46875 points a day to cadence and 0.5 to recency: 0.96875 a
    # day; from 80.625 the score reaches 80 after 0.625 / 0.96875 days = 55,742 s.
    due = _stored(db, ids["a"]).next_due
    assert due == pytest.approx(T0 + 40 * DAY + 55_742, abs=2)
    assert due is not None
    before = health_now(db, workspace_id, ids["a"], at(due - T0 - 1200))
    after = health_now(db, workspace_id, ids["a"], at(due - T0 + 1200))
    assert before is not None and after is not None
    # (shown to 2 decimals: 20 minutes move the score by 0.013)
    assert math.floor(before.score) == 80 and math.floor(after.score) == 79
    assert ids["a"] not in health_due(db, workspace_id, at(due - T0 - 1))
    assert ids["a"] in health_due(db, workspace_id, at(due - T0))
    # re-scoring only the due customer moves its due time on
    score_health(db, workspace_id, now=at(due - T0), customer_ids=[ids["a"]])
    assert (_stored(db, ids["a"]).next_due or 0) > due


def test_a_churned_customer_is_never_happy_and_stable(db: Database) -> None:
    workspace_id = new_workspace(db)
    apply_stage_model(db, workspace_id, shipped_model_text("classic"))
    messages = [
        message("loyal", 0, f"l{i}", "Order Completed", revenue=10) for i in range(1)
    ] + [
        message("loyal", d * DAY, f"l-{d}", "Order Completed", revenue=10)
        for d in range(10, 300, 10)
    ] + [message("loyal", 5 * DAY, "l-nps", "NPS Survey Answered", score=10)]  # fmt: skip
    ingest(db, workspace_id, messages)
    run_lifecycle(db, workspace_id)
    ids = _customers(db)
    # day 290: a frequent buyer and promoter, happy and stable
    score_health(db, workspace_id, now=at(291 * DAY))
    assert _stored(db, ids["loyal"]).state == "happy"
    # 365 days after the last purchase, classic says churned: never happy and stable
    score_health(db, workspace_id, now=at(290 * DAY + 366 * DAY))
    stored = _stored(db, ids["loyal"])
    assert stored.state == "at_risk"
    assert stored.contributions["stage"]["points"] == 0.0
    explained = health_now(db, workspace_id, ids["loyal"], at(290 * DAY + 366 * DAY))
    assert explained is not None and explained.state == "at_risk"
    assert explained.reasons[0] == "Churned (exit stage): never counted as happy and stable"
    assert explained.next_action


@settings(max_examples=200, deadline=None)
@given(
    nps=st.one_of(st.none(), st.integers(0, 10)),
    purchases=st.integers(0, 50),
    days=st.one_of(st.none(), st.integers(0, 2000)),
    trend=st.one_of(st.none(), st.floats(0, 10)),
    rating=st.one_of(st.none(), st.integers(1, 5)),
)
def test_an_exit_stage_is_never_happy_whatever_the_rest(
    nps: int | None, purchases: int, days: int | None, trend: float | None, rating: int | None
) -> None:
    card = load_scorecard(default_scorecard_text())
    values = {
        "last_nps": nps,
        "purchases_365d": purchases,
        "purchase_count": purchases,
        "days_since_last_purchase": None if days is None else days * DAY,
        "engagement_trend": trend,
        "frontline_rating": rating,
        "last_frontline_rating_at": 0 if rating else None,
    }
    total, state, parts = score(card, values, now=DAY, exit_stage=True, prior_gap_days=30.0)
    assert state != "happy"
    assert sum(p["points"] for p in parts.values()) == pytest.approx(total, abs=1e-4)
    assert 0.0 <= total <= 100.0 + 1e-9


def test_missing_data_is_left_out_or_a_stated_prior_never_full_points() -> None:
    card = load_scorecard(default_scorecard_text())
    # nothing known but 2 purchases in a year, 100 days ago, and no activity in 6 months:
    # left out: every sentiment factor, cadence (no first/last purchase given), P(alive),
    # payments, downgrades, stage. Present: recency 20 x (1 - 100/365) = 14.52, frequency
    # 40 x 2/6 = 13.33, engagement at its stated prior 0 (of 3): 27.85 of 63 -> 44.21.
    total, state, parts = score(
        card,
        {"days_since_last_purchase": 100 * DAY, "purchases_365d": 2, "engagement_trend": None},
        now=100 * DAY,
    )
    expected = 100 * (20 * (1 - 100 / 365) + 40 * 2 / 6) / 63
    assert total == pytest.approx(expected)
    assert parts["engagement"]["value"] is None and parts["engagement"]["weight"] > 0
    assert parts["nps"]["weight"] == 0 and parts["tickets"]["weight"] == 0
    assert state == "at_risk"


def test_a_frontline_rating_fades_with_its_age() -> None:
    card = load_scorecard(
        """\
name: notes
factors:
  rating: {feature: frontline_rating, axis: sentiment, weight: 50, best: 5, worst: 1,
           decay_days: 90, decay_from: last_frontline_rating_at}
  frequency: {feature: purchases_365d, axis: risk, weight: 50, best: 2, worst: 0}
"""
    )
    values = {"frontline_rating": 1, "last_frontline_rating_at": 0, "purchases_365d": 2}
    # fresh: rating 0 of 50, frequency 50 of 50 -> 50, unhappy
    fresh, state, _ = score(card, values, now=0)
    assert fresh == pytest.approx(50.0) and state == "unhappy"
    # 90 days on the rating weighs 25: 100 x 50 / 75 = 66.67; 180 days: 12.5 -> 80
    assert score(card, values, now=90 * DAY)[0] == pytest.approx(200 / 3)
    assert score(card, values, now=180 * DAY)[0] == pytest.approx(80.0)


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_the_snapshot_equals_the_reference(db: Database, engine: str) -> None:
    workspace_id = new_workspace(db)
    log = [
        *PURCHASES,
        message("a", 3 * DAY, "a-n", "NPS Survey Answered", score=4, comment="meh"),
        message("a", 3 * DAY, "a-n2", "NPS Survey Answered", score=8),  # a tie: the largest
        message("a", 25 * DAY, "a-t", "Ticket Opened"),
        message("b", 31 * DAY, "b-p", "Prediction Scored", p_alive=0.4),
        message("b", 32 * DAY, "b-f", "Payment Failed"),
        message("c", 6 * DAY, "c-v", kind="page"),
    ]
    note = message("c", 7 * DAY, "c-note", "Frontline Note", rating=2, text="x", channel="system")
    ingest(db, workspace_id, log)
    ingest(db, workspace_id, [note], own=True)  # CLM writes notes on the staff's behalf
    log.append(note)
    ids = _customers(db)
    card = load_scorecard(default_scorecard_text())
    events = as_log_events(ids, log)
    for day in (0, 4, 26, 40, 200):
        now = T0 + day * DAY
        table = feature_snapshot(db, workspace_id, card.feature_set, now, engine=engine)  # type: ignore[arg-type]
        got = {row["customer_id"]: row for row in table.to_pylist()}
        for customer in sorted(set(ids.values())):
            mine = sorted((e for e in events if e.customer_id == customer), key=lambda e: e.ts)
            if mine[0].ts > now:
                assert customer not in got
                continue
            expected = feature_values(card.feature_set.features, mine, now)
            row = got[customer]
            for name, value in expected.items():
                assert row[name] == (pytest.approx(value) if isinstance(value, float) else value), (
                    day,
                    customer,
                    name,
                )


def test_summary_line_counts_states_and_changes(db: Database) -> None:
    workspace_id = new_workspace(db)
    save_definition(db, workspace_id, "health", CADENCE_CARD)
    ingest(db, workspace_id, PURCHASES)
    first = score_health(db, workspace_id, now=at(21 * DAY))
    assert first.changes == {"new -> happy": 3}
    assert "3 happy and stable" in first.line() and "first time" in first.line()
    # day 100: a 80 days silent = 6 gaps; c 95 days -> both well below half: at risk
    second = score_health(db, workspace_id, now=at(21 * DAY) + timedelta(days=79))
    assert second.counts["at_risk"] == 3
    assert second.changes == {"happy -> at_risk": 3}
    assert "happy -> at_risk 3" in second.line()
