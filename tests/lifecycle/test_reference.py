"""The pure-Python reference against histories worked out by hand."""

from __future__ import annotations

from clm.lifecycle.loader import load_stage_model, shipped_model
from clm.lifecycle.reference import LogEvent, feature_values, reference_history
from tests.lifecycle.cases import MESSAGES, expected_rows
from tests.lifecycle.logs import DAY, T0, as_log_events
from tests.lifecycle.models import EVERYTHING

CUSTOMERS = {"u1": 1, "u2": 2, "u3": 3}


def _rows(model_text: str, events: list[LogEvent]) -> list[tuple[object, ...]]:
    model = load_stage_model(model_text)
    return [
        (t.customer_id, t.ts, t.from_stage, t.to_stage, t.rule, t.cause_message_id)
        for t in reference_history(model, events)
    ]


def test_every_feature_kind_window_and_lapse() -> None:
    events = as_log_events(CUSTOMERS, MESSAGES)
    assert _rows(EVERYTHING, events) == expected_rows(CUSTOMERS)


def test_classic_walk_forward_lapse_back_churn_and_reactivate() -> None:
    model = shipped_model("classic")
    events = [
        LogEvent(7, T0, "a", None, "page"),
        LogEvent(7, T0 + 10, "b", None, "identify"),
        LogEvent(7, T0 + 20, "c", "Order Completed", revenue=10.0),
        LogEvent(7, T0 + 30 * DAY, "d", "Order Completed", revenue=5.0),
        LogEvent(7, T0 + 31 * DAY, "e", "NPS Survey Answered", properties={"score": 10}),
        LogEvent(7, T0 + 500 * DAY, "f", "Order Completed", revenue=1.0),
    ]
    history = reference_history(model, events)
    assert [(t.ts - T0, t.to_stage, t.rule) for t in history] == [
        (0, "reach", "stage:reach"),
        (10, "acquisition", "stage:acquisition"),
        (20, "conversion", "stage:conversion"),
        (30 * DAY, "retention", "stage:retention"),
        (31 * DAY, "loyalty", "stage:loyalty"),  # repeat buyer and NPS promoter
        (210 * DAY, "retention", "lapse:loyalty_lapsed"),  # 180 days after the day-30 order
        (395 * DAY, "churned", "stage:churned"),  # 365 days after it
        (500 * DAY, "loyalty", "stage:loyalty"),  # buys again: reactivated
        (680 * DAY, "retention", "lapse:loyalty_lapsed"),
        (865 * DAY, "churned", "stage:churned"),
    ]
    kinds = [model.transition_kind(t.from_stage, t.to_stage) for t in history]
    assert kinds == [
        "entry",
        "forward",
        "forward",
        "forward",
        "forward",
        "backward",
        "exit",
        "reactivation",
        "backward",
        "exit",
    ]


def test_cancelled_subscription_and_p_alive_churn() -> None:
    model = shipped_model("classic")
    events = [
        LogEvent(1, 100, "a", "Subscription Started"),
        LogEvent(1, 200, "b", "Subscription Cancelled"),
        LogEvent(2, 100, "c", "Order Completed"),
        LogEvent(2, 150, "d", "Prediction Scored", properties={"p_alive": 0.5}),
        LogEvent(2, 200, "e", "Prediction Scored", properties={"p_alive": 0.05}),
    ]
    history = [(t.customer_id, t.ts, t.to_stage) for t in reference_history(model, events)]
    assert history == [
        (1, 100, "conversion"),
        (1, 200, "churned"),
        (2, 100, "conversion"),
        (2, 200, "churned"),
    ]


def test_feature_values_as_of_an_instant() -> None:
    model = load_stage_model(EVERYTHING)
    events = [e for e in as_log_events(CUSTOMERS, MESSAGES) if e.customer_id == 1]
    values = feature_values(model.features, events, T0 + 3 * DAY)
    assert values["spend"] == 130.0
    assert values["big_orders_7d"] == 2
    assert values["first_order"] == T0
    assert values["days_since_last_purchase"] == DAY  # seconds since the day-2 order
    assert values["last_score"] is None


SURVEYS_AND_ACTIVITY = """\
name: surveys_and_activity
stages:
  - {name: visitor, initial: true}
  - {name: promoter, rule: "last_nps >= 9"}
  - {name: unhappy, rule: "last_csat <= 2"}
  - {name: active, rule: "engagement_30d >= 2 and days_since_last_seen < 1"}
"""


def test_survey_answered_events_and_system_events() -> None:
    model = load_stage_model(SURVEYS_AND_ACTIVITY)
    events = [
        LogEvent(1, T0, "a", "Landing", type="page", channel="email"),
        # CLM's own surveys: one event name, the survey type in the properties.
        LogEvent(1, T0 + 10, "b", "survey_answered",
                 properties={"survey_type": "nps", "score": 9, "response_id": "r1"}),
        LogEvent(1, T0 + 20, "c", "survey_answered",
                 properties={"survey_type": "csat", "score": 2, "response_id": "r2"}),
        # Imported answers under the per-survey name still count, the latest winning.
        LogEvent(1, T0 + 30, "d", "NPS Survey Answered", properties={"score": 4}),
        # What CLM records about the customer is not the customer's activity.
        LogEvent(1, T0 + 5 * DAY, "clm-pred-1", "Prediction Scored", channel="system",
                 properties={"p_alive": 0.9}),
    ]  # fmt: skip
    early = feature_values(model.features, events, T0 + 25)
    assert (early["last_nps"], early["last_csat"]) == (9, 2)
    later = feature_values(model.features, events, T0 + 6 * DAY)
    assert later["last_nps"] == 4
    assert later["last_seen"] == T0 + 30  # the prediction at day 5 is not a touchpoint
    assert later["engagement_30d"] == 4
    assert later["days_since_last_seen"] == 6 * DAY - 30
