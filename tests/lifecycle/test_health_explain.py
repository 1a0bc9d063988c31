"""The stored health score read back with its reasons (what the customer 360 shows), the words
for a state without any feedback, and what moved each change of the history, worked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from clm.ingest.service import ingest
from clm.lifecycle import apply_stage_model, customer_lifecycle, run_lifecycle, shipped_model_text
from clm.lifecycle.catalog import save_definition
from clm.lifecycle.health_current import score_health
from clm.lifecycle.health_explain import health_stored, reason, shown, signed_points, value_words
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.health_service import health_history, health_now, run_health
from clm.store.engine import Database
from clm.store.models import Customer
from tests.lifecycle.logs import DAY, at, message, new_workspace

NPS_CARD = """\
name: nps_and_recency
unhappy_below: 0.5
at_risk_below: 0.5
factors:
  recency: {feature: days_since_last_purchase, axis: risk, weight: 50, best: 0, worst: 100}
  nps: {feature: last_nps, axis: sentiment, weight: 50, best: 10, worst: 0,
        label: "last NPS score"}
"""


def _ids(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {u: c for u, c in session.execute(select(Customer.user_id, Customer.id))}


def test_a_churned_customer_without_feedback_is_not_called_happy(db: Database) -> None:
    workspace_id = new_workspace(db)
    apply_stage_model(db, workspace_id, shipped_model_text("classic"))
    ingest(
        db,
        workspace_id,
        [message("gone", d * DAY, f"g{d}", "Order Completed", revenue=10) for d in (0, 10)]
        + [
            message("fan", d * DAY, f"f{d}", "Order Completed", revenue=10)
            for d in range(0, 400, 20)
        ]
        + [message("fan", 380 * DAY, "f-nps", "NPS Survey Answered", score=10)],
    )
    run_lifecycle(db, workspace_id)
    ids = _ids(db)
    when = at(400 * DAY)  # "gone" last bought on day 10: 390 days of silence, churned
    score_health(db, workspace_id, now=when)
    gone = health_stored(db, workspace_id, ids["gone"], when)
    assert gone is not None
    # Risk factors earn nothing (a year silent, no purchases in 365 days, exit stage): the
    # state is at risk by the risk axis alone; no survey, rating or ticket says how they feel.
    assert gone.state == "at_risk"
    assert gone.sentiment_known is False
    # one name per state everywhere; ``sentiment_known`` says no feedback backs it
    assert gone.state_label == "happy but at risk"
    # present: recency 20, cadence 15, frequency 40, engagement 3 (a stated prior), stage 10
    # = 88 nominal, scaled to 100. Frequency (no purchase in 365 days) loses 40/88 = 45.5
    # points, recency (390 days, past 365) 20/88 = 22.7.
    assert gone.reasons == [
        "Churned (exit stage): never counted as happy and stable",
        "Purchases in the last 365 days: 0 purchases (\u221245 points)",
        "Days since last purchase: 390 days (\u221223 points)",
    ]
    # the stage factor in words: churned, its 10/88 = 11.4 points lost
    stage = next(f for f in gone.factors if f.factor == "stage")
    assert (stage.value, stage.label) == (0.0, "Stage")
    card = get_scorecard(db, workspace_id)[1]
    assert reason(card, stage) == "Stage: churned (exit stage) (\u221211 points)"
    # the promoter who buys every 20 days is happy, and the words say so
    fan = health_stored(db, workspace_id, ids["fan"], when)
    assert fan is not None and fan.sentiment_known is True
    assert fan.state_label == "happy and stable"
    # the stored score read back equals the reference reading of the customer's own events
    for name in ("gone", "fan"):
        stored = health_stored(db, workspace_id, ids[name], when)
        reference = health_now(db, workspace_id, ids[name], when)
        assert stored is not None and reference is not None
        assert stored.score == pytest.approx(reference.score, abs=0.01)
        assert stored.state == reference.state
        assert stored.reasons == reference.reasons
        assert [(f.factor, f.points) for f in stored.factors] == [
            (f.factor, f.points) for f in reference.factors
        ]


def test_the_360_reads_the_stored_score_not_a_new_one(db: Database) -> None:
    workspace_id = new_workspace(db)
    save_definition(db, workspace_id, "health", NPS_CARD)
    ingest(db, workspace_id, [message("a", 0, "a1", "Order Completed", revenue=10)])
    ids = _ids(db)
    score_health(db, workspace_id, now=at(50 * DAY))  # recency 50 of 100 days: 50 points
    lifecycle = customer_lifecycle(db, workspace_id, ids["a"])
    assert lifecycle.health is not None
    assert lifecycle.health.score == pytest.approx(50.0)
    # stored on day 50 and due again when the score has moved a point, long past: "as of"
    assert lifecycle.health.at == at(50 * DAY)
    # asked for another moment, it is computed for that moment
    then = customer_lifecycle(db, workspace_id, ids["a"], at(20 * DAY))
    assert then.health is not None and then.health.score == pytest.approx(80.0)


def test_each_change_says_what_moved_it(db: Database) -> None:
    workspace_id = new_workspace(db)
    save_definition(db, workspace_id, "health", NPS_CARD)
    ingest(
        db,
        workspace_id,
        [
            message("a", 0, "a1", "Order Completed", revenue=10),
            message("a", DAY, "a2", "NPS Survey Answered", score=9),
            message("a", 2 * DAY, "a3", "NPS Survey Answered", score=3),
        ],
    )
    run_health(db, workspace_id, now=at(2 * DAY))
    history = health_history(db, workspace_id, _ids(db)["a"], at(2 * DAY))
    # day 0: recency alone (NPS missing, left out): 100. Day 1: recency 50 x 0.99 = 49.5,
    # NPS 9 -> 45: 94.5. Day 2: 49 + NPS 3 -> 15: 64, sentiment 15 of 50 < 0.5: unhappy.
    assert [h.score for h in history] == pytest.approx([100.0, 94.5, 64.0])
    assert [h.state_label for h in history] == [
        "happy and stable",
        "happy and stable",
        "unhappy",
    ]
    assert history[0].from_score is None and history[0].drivers == []
    # A part: change in points less change in weight at the old score's rate. Day 1 (old
    # score 100): NPS arrives, 45 - 50 x 1.0 = -5; recency -50.5 + 50 x 1.0 = -0.5, under a
    # point. They add up to the move, 94.5 - 100.
    assert history[1].drivers == ["Last NPS score: 9 of 10 (\u22125 points)"]
    assert history[2].from_score == pytest.approx(94.5)
    assert history[2].from_state == "happy"
    # day 2: weights unchanged; NPS 45 -> 15 is -30, recency -0.5 is not a driver
    assert history[2].drivers == ["Last NPS score: 3 of 10 (\u221230 points)"]
    assert history[2].from_state_label == "happy and stable"


def test_a_factor_arriving_is_credited_with_its_distance_from_the_old_score() -> None:
    from clm.lifecycle.health import score
    from clm.lifecycle.health_explain import drivers
    from clm.lifecycle.loader import load_scorecard

    card = load_scorecard(NPS_CARD)
    # before: recency alone, 40 days -> 60 of 100; after: NPS 10 arrives (full marks), recency
    # the same: (60 + 100) / 2 = 80. NPS's part: 50 - 50 x 0.6 = +20, the whole move.
    total_before, _, before = score(card, {"days_since_last_purchase": 40 * DAY})
    total_after, _, after = score(card, {"days_since_last_purchase": 40 * DAY, "last_nps": 10})
    assert (total_before, total_after) == pytest.approx((60.0, 80.0))
    assert drivers(card, before, after) == ["Last NPS score: 10 of 10 (+20 points)"]


@settings(max_examples=200, deadline=None)
@given(
    first=st.fixed_dictionaries(
        {
            "last_nps": st.one_of(st.none(), st.integers(0, 10)),
            "purchases_365d": st.integers(0, 20),
            "days_since_last_purchase": st.integers(0, 900),
            "frontline_rating": st.one_of(st.none(), st.integers(1, 5)),
            "open_tickets": st.one_of(st.none(), st.integers(0, 5)),
        }
    ),
    second=st.fixed_dictionaries(
        {
            "last_nps": st.one_of(st.none(), st.integers(0, 10)),
            "purchases_365d": st.integers(0, 20),
            "days_since_last_purchase": st.integers(0, 900),
            "frontline_rating": st.one_of(st.none(), st.integers(1, 5)),
            "open_tickets": st.one_of(st.none(), st.integers(0, 5)),
        }
    ),
)
def test_the_drivers_parts_add_up_to_the_move(
    first: dict[str, int | None], second: dict[str, int | None]
) -> None:
    from clm.lifecycle.health import score
    from clm.lifecycle.health_explain import driver_parts
    from clm.lifecycle.loader import default_scorecard_text, load_scorecard

    card = load_scorecard(default_scorecard_text())

    def values(raw: dict[str, int | None]) -> dict[str, object]:
        days = raw["days_since_last_purchase"]
        rated = raw["frontline_rating"] is not None
        return {
            **raw,
            "days_since_last_purchase": None if days is None else days * DAY,
            "last_frontline_rating_at": 0 if rated else None,
            "tickets_opened": 1 if raw["open_tickets"] is not None else None,
        }

    before_total, _, before = score(card, values(first), now=DAY, prior_gap_days=30.0)
    after_total, _, after = score(card, values(second), now=DAY, prior_gap_days=30.0)
    parts = driver_parts(card, before, after)
    # recency is present in both, so the weights add up to 100 both times
    assert sum(parts.values()) == pytest.approx(after_total - before_total, abs=1e-3)


def test_values_read_for_people_with_their_unit() -> None:
    """What a customer-success manager would write: units, whole counts, a real minus sign."""
    from clm.lifecycle.loader import default_scorecard_text, load_scorecard

    card = load_scorecard(default_scorecard_text())
    words = {
        "stage": [(0.0, "churned (exit stage)"), (1.0, "active")],
        "recency": [(160.86, "161 days"), (1.0, "1 day")],
        "cadence": [(7.92, "silent for 7.9\u00d7 their usual gap between purchases")],
        "frequency": [(1.0, "1 purchase"), (3.0, "3 purchases")],
        "engagement": [(0.79, "79% of their usual activity")],
        "p_alive": [(0.4, "40% likely to buy again")],
        "payments": [(2.0, "2 failed payments")],
        "nps": [(3.0, "3 of 10")],
        "frontline": [(3.92, "3.9 of 5")],
        "comment": [(-0.6, "negative (\u22120.6)"), (0.0, "neutral (0)")],
        "tickets": [(None, "no data")],
    }
    for key, cases in words.items():
        for value, expected in cases:
            assert value_words(card, key, value) == expected, (key, value)
    assert [signed_points(d) for d in (-10.75, 0.4, 1.2, 20.0)] == [
        "\u221211 points",
        "0 points",
        "+1 point",
        "+20 points",
    ]
    assert [shown(v) for v in (7.92, 160.86, 1234.0, 2.0, -0.04)] == [
        "7.9",
        "161",
        "1,234",
        "2",
        "0",
    ]
