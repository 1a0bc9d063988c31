"""The DuckDB + NumPy path equals the reference on random logs: events at the same instant,
windows closing, lapse deadlines, string and numeric last values, unknown properties, and
customers split across batches."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clm.lifecycle.columnar import duckdb_transitions
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.engines import ARROW_SCHEMA
from clm.lifecycle.loader import load_stage_model, shipped_model
from clm.lifecycle.reference import LogEvent, reference_history
from tests.lifecycle.logs import DAY, T0
from tests.lifecycle.models import EVERYTHING

NAMES = [
    "Order Completed",
    "Survey",
    "NPS Survey Answered",
    "Email Opened",
    "Page Viewed",
    "Referral Given",
    "Subscription Started",
    "Subscription Renewed",
    "Subscription Cancelled",
    "Prediction Scored",
    "Signed Up",
]


@st.composite
def logs(draw: st.DrawFn) -> list[LogEvent]:
    events = []
    for index in range(draw(st.integers(1, 30))):
        name = draw(st.sampled_from(NAMES))
        props: dict[str, Any] = {}
        if name in ("Survey", "NPS Survey Answered"):
            props["score"] = draw(st.one_of(st.integers(0, 10), st.just("ten")))
        if name == "Prediction Scored":
            props["p_alive"] = draw(st.sampled_from([0.05, 0.5, 0.9]))
        if name == "Page Viewed" and draw(st.booleans()):
            props["plan"] = "pro"
        revenue = draw(st.sampled_from([None, 5.0, 60.0, 150.0])) if "Order" in name else None
        events.append(
            LogEvent(
                customer_id=draw(st.integers(1, 4)),
                # few distinct instants, so several events often share one
                ts=T0 + draw(st.integers(0, 400)) * DAY + draw(st.sampled_from([0, 1])),
                message_id=f"m{index:03d}",
                name=name,
                type=draw(st.sampled_from(["track", "track", "identify"])),
                channel=draw(st.sampled_from([None, "email"])),
                revenue=revenue,
                properties=props,
            )
        )
    return events


def as_arrow(events: list[LogEvent]) -> pa.Table:
    rows = [
        {
            **{k: getattr(e, k) for k in ("customer_id", "ts", "message_id", "name", "type")},
            **{"channel": e.channel, "campaign": None, "source": None, "revenue": e.revenue},
            "properties": json.dumps(dict(e.properties)),
        }
        for e in events
    ]
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


def expected(model: CompiledModel, events: list[LogEvent]) -> list[tuple[Any, ...]]:
    return sorted(
        (t.customer_id, t.ts, t.from_stage, t.to_stage, t.rule, t.cause_message_id)
        for t in reference_history(model, events)
    )


MODELS = {
    "everything": load_stage_model(EVERYTHING),
    **{
        name: shipped_model(name)
        for name in ("classic", "four_stage", "seven_stage", "b2b_subscription")
    },
}


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=logs(), batch_rows=st.sampled_from([1, 7, 1_000]))
def test_columnar_equals_the_reference(name: str, events: list[LogEvent], batch_rows: int) -> None:
    model = MODELS[name]
    result = duckdb_transitions(as_arrow(events), model, batch_rows=batch_rows)
    assert rows(result) == expected(model, events)


def test_only_the_wanted_customers_are_computed() -> None:
    events = [
        LogEvent(1, T0, "a", "Order Completed", revenue=5.0),
        LogEvent(2, T0, "b", "Order Completed", revenue=5.0),
    ]
    model = MODELS["everything"]
    result = duckdb_transitions(as_arrow(events), model, customer_ids=[2])
    # customer 2 alone: visitor -> buyer at once (spend 5 > 0), then back to visitor 30 days
    # after the order... only once the first order is also more than 40 days old.
    assert rows(result) == [
        (2, T0, None, "buyer", "stage:buyer", "b"),
        (2, T0 + 40 * DAY + 1, "buyer", "visitor", "lapse:buyer_to_visitor", None),
    ]


def test_classic_churns_on_a_low_p_alive_and_comes_back() -> None:
    model = MODELS["classic"]
    p = "Prediction Scored"
    events = [
        LogEvent(1, T0, "m1", "Order Completed", revenue=5.0),
        LogEvent(1, T0 + 10 * DAY, "m2", "Order Completed", revenue=5.0),
        LogEvent(1, T0 + 20 * DAY, "m3", p, properties={"p_alive": 0.5}),  # >= 0.1: stays
        LogEvent(1, T0 + 30 * DAY, "m4", p, properties={"p_alive": 0.05}),  # < 0.1: churned
        LogEvent(1, T0 + 40 * DAY, "m5", p, properties={"p_alive": 0.8}),  # back
    ]
    hand = [
        (1, T0, None, "conversion", "stage:conversion", "m1"),
        (1, T0 + 10 * DAY, "conversion", "retention", "stage:retention", "m2"),
        (1, T0 + 30 * DAY, "retention", "churned", "stage:churned", "m4"),
        (1, T0 + 40 * DAY, "churned", "retention", "stage:retention", "m5"),
        # no purchase for churn_days (365) after the second order
        (1, T0 + 375 * DAY, "retention", "churned", "stage:churned", None),
    ]
    assert expected(model, events) == hand
    assert rows(duckdb_transitions(as_arrow(events), model)) == hand
    assert model.transition_kind("churned", "retention") == "reactivation"
