"""Health: scores worked out by hand from a small scorecard, stored history, backtest."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from clm.errors import ValidationError
from clm.ingest.service import ingest
from clm.lifecycle.backtest import auc
from clm.lifecycle.catalog import save_definition
from clm.lifecycle.health import score, sentiment
from clm.lifecycle.health_service import health_history, health_now, run_health
from clm.lifecycle.loader import default_scorecard_text, load_scorecard
from clm.store.engine import Database
from clm.store.models import Event
from tests.lifecycle.logs import DAY, at, message, new_workspace

CARD = """\
name: small
unhappy_below: 0.5
at_risk_below: 0.5
factors:
  nps: {feature: last_nps, axis: sentiment, weight: 30, best: 10, worst: 0}
  tickets: {feature: open_tickets, axis: sentiment, weight: 10, best: 0, worst: 2, missing: 1}
  engagement: {feature: engagement_30d, axis: risk, weight: 60, best: 4, worst: 0}
"""


def test_contributions_add_up_to_the_score() -> None:
    card = load_scorecard(CARD)
    # nps 8 -> 30 * 0.8 = 24; 1 open ticket -> 10 * 0.5 = 5; 1 event of 4 -> 60 * 0.25 = 15.
    total, state, parts = score(card, {"last_nps": 8, "open_tickets": 1, "engagement_30d": 1})
    assert total == pytest.approx(44.0)
    assert {k: p["points"] for k, p in parts.items()} == pytest.approx(
        {"nps": 24.0, "tickets": 5.0, "engagement": 15.0}
    )
    # sentiment 29/40 >= 0.5 but risk 15/60 < 0.5: happy but at risk.
    assert state == "at_risk"
    # unknown NPS is left out and the weights re-normalised (tickets 10 + engagement 60 = 70):
    # 2 tickets earn 0, engagement 60 of 70 -> 100 * 60 / 70 = 85.71; sentiment 0/10: unhappy.
    total, state, parts = score(card, {"last_nps": None, "open_tickets": 2, "engagement_30d": 9})
    assert total == pytest.approx(600 / 7) and state == "unhappy"
    assert parts["nps"] == {"value": None, "weight": 0.0, "points": 0.0}


def test_bad_scorecard_names_the_line() -> None:
    with pytest.raises(ValidationError) as caught:
        load_scorecard(CARD.replace("feature: open_tickets", "feature: subscription_status"))
    assert [e.message for e in caught.value.errors] == [
        "line 6: type mismatch: a factor needs a number, 'subscription_status' is string"
    ]
    # the shipped weights are relative: risk 20+15+40+3+5+10+5+10 = 108, sentiment
    # 25+10+5+10+5+5+15 = 75, 183 in all, so NPS is worth 100 * 25 / 183 = 13.66 points
    assert load_scorecard(default_scorecard_text()).weights["nps"] == pytest.approx(2500 / 183)


def test_health_history_and_now(db: Database) -> None:
    workspace_id = new_workspace(db)
    save_definition(db, workspace_id, "health", CARD)
    ingest(
        db,
        workspace_id,
        [
            message("a", 0, "a1", "NPS Survey Answered", score=10),
            message("a", DAY, "a2", "Ticket Opened"),
            message("a", 2 * DAY, "a3", "Page Viewed"),
            message("a", 3 * DAY, "a4", "Page Viewed"),
        ],
    )
    assert run_health(db, workspace_id) > 0
    history = health_history(db, workspace_id, 1, at(100 * DAY))
    # day 0: nps 30 + tickets 10 + engagement 1/4 of 60 = 15 -> 55, risk 15/60: at risk
    # day 1: one ticket open: 30 + 5 + 30 (2 events) = 65; day 2: 30 + 5 + 45 = 80 (risk 0.75)
    # day 3: 30 + 5 + 60 = 95; day 30.. events leave the window one by one: 80, 65, 50, 35.
    assert [(h.score, h.state) for h in history] == [
        (55.0, "at_risk"),
        (65.0, "happy"),
        (80.0, "happy"),
        (95.0, "happy"),
        (80.0, "happy"),
        (65.0, "happy"),
        (50.0, "at_risk"),
        (35.0, "at_risk"),
    ]
    now = health_now(db, workspace_id, 1, at(100 * DAY))
    assert now is not None and now.score == 35.0 and now.state == "at_risk"
    assert now.factors[0].factor == "engagement"  # costs the most points
    assert sum(f.points for f in now.factors) == pytest.approx(now.score)


def test_auc_by_hand() -> None:
    # risk 0.9 and 0.4 churn, 0.5 and 0.1 do not: 3 of 4 pairs ordered right -> 0.75
    scores = np.array([0.9, 0.5, 0.4, 0.1])
    assert auc(scores, np.array([True, False, True, False])) == 0.75
    assert auc(scores, np.array([True, True, True, True])) is None


SENTIMENT_CARD = """\
name: comments
factors:
  comment: {feature: last_survey_comment, transform: sentiment, axis: sentiment, weight: 50,
            best: 1, worst: -1}
  engagement: {feature: engagement_30d, axis: risk, weight: 50, best: 1, worst: 0}
"""


def test_survey_comment_sentiment_is_a_factor() -> None:
    # VADER: a lone lexicon word of valence v scores v / sqrt(v^2 + 15); 'great' is 3.1, so
    # 3.1 / sqrt(24.61) = 0.6249; 'terrible' is -2.1: -2.1 / sqrt(19.41) = -0.4767.
    assert sentiment("great") == pytest.approx(0.6249, abs=1e-4)
    assert sentiment("terrible") == pytest.approx(-0.4767, abs=1e-4)
    card = load_scorecard(SENTIMENT_CARD)
    # 'great' maps (0.6249 + 1) / 2 of 50 = 40.62 points; one event of 1: 50. happy.
    total, state, parts = score(card, {"last_survey_comment": "great", "engagement_30d": 1})
    assert parts["comment"]["points"] == pytest.approx(40.62, abs=0.01)
    assert total == pytest.approx(90.62, abs=0.01) and state == "happy"
    # 'terrible': (1 - 0.4767) / 2 of 50 = 13.08, a sentiment share 0.26 < 0.5: unhappy.
    total, state, _ = score(card, {"last_survey_comment": "terrible", "engagement_30d": 1})
    assert total == pytest.approx(63.08, abs=0.01) and state == "unhappy"
    # no comment: left out, engagement alone is the score (50 of 50 -> 100); no sentiment
    # evidence is not unhappiness
    total, state, _ = score(card, {"last_survey_comment": None, "engagement_30d": 1})
    assert total == pytest.approx(100.0) and state == "happy"


def test_sentiment_needs_a_text_feature() -> None:
    with pytest.raises(ValidationError) as caught:
        load_scorecard(SENTIMENT_CARD.replace("last_survey_comment", "last_nps"))
    assert [e.message for e in caught.value.errors] == [
        "line 3: type mismatch: sentiment reads text, 'last_nps' is number"
    ]


def test_comments_and_state_changes_in_the_log(db: Database) -> None:
    workspace_id = new_workspace(db)
    save_definition(db, workspace_id, "health", SENTIMENT_CARD)
    ingest(
        db,
        workspace_id,
        [
            message("a", 0, "a1", "NPS Survey Answered", score=9, comment="great"),
            message("a", DAY, "a2", "CSAT Survey Answered", score=1, comment="terrible"),
        ],
    )
    stored = run_health(db, workspace_id, now=at(100 * DAY))
    history = health_history(db, workspace_id, 1, at(100 * DAY))
    # day 0: 40.62 + 50, happy; day 1: 13.08 + 50 (two events, capped at 1), unhappy; day 30
    # the first event leaves the 30-day window (one left: still 50); day 31 the second: 13.08.
    assert [h.score for h in history] == pytest.approx([90.6225, 63.0825, 13.0825])
    assert [h.state_label for h in history] == ["happy and stable", "unhappy", "unhappy"]
    assert stored == 3

    def state_events() -> list[tuple[str, dict[str, object]]]:
        with db.session() as session:
            found = session.execute(
                select(Event.message_id, Event.properties)
                .where(Event.name == "health_state_changed")
                .order_by(Event.ts)
            )
            return [(m, dict(p)) for m, p in found]

    events = state_events()
    # two changes of state (none -> happy, happy -> unhappy); the score change at day 30 is
    # not a change of state.
    assert [(p["from_state"], p["to_state"]) for _, p in events] == [
        (None, "happy"),
        ("happy", "unhappy"),
    ]
    assert all(m.startswith("clm-lc-h") for m, _ in events)
    # a rerun writes nothing twice, and the new events change no feature
    assert run_health(db, workspace_id, now=at(100 * DAY)) == 3
    assert state_events() == events
    assert [h.score for h in health_history(db, workspace_id, 1, at(100 * DAY))] == [
        h.score for h in history
    ]
