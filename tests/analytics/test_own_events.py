"""CLM's own events are never touchpoints, anywhere (``clm.store.own_events``).

Every log here mixes customer events with events CLM wrote through its own writers (an
``Email Sent`` as delivery writes it, a ``Prediction Scored`` and a ``Referral Converted`` on
the ``system`` channel), and a customer event whose message id starts with one of CLM's own
prefixes (``clm-lc-``, ``clm-engage-``): that one is the customer's and must count. Expected
credits are worked out by hand in each docstring.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clm.analytics import AcquisitionQuery, AttributionQuery, acquisition, attribution, parse_query
from clm.analytics.source import report_source
from clm.analytics.spend import import_spend, load_spend
from clm.engage import eventlog
from clm.ingest import ingest
from clm.lifecycle.service import run_lifecycle
from clm.store.engine import Database
from clm.store.own_events import OWN_CHANNEL, is_own_event, is_touchpoint
from tests.analytics.logs import event, load, ts, write_history

RULES = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov",
         "shapley")  # fmt: skip


def _at(when: str) -> datetime:
    return datetime.fromtimestamp(ts(when), UTC)


def _clm_events(user: str, day: str) -> list[dict[str, Any] | None]:
    """What CLM writes about ``user`` on ``day``: a send, a score and a referral conversion,
    each through the path its writer uses (engage's event log; scores on the system channel)."""
    sent = eventlog.track(
        {"user_id": user}, "Email Sent", f"sent-{user}", {"message_id": 1, "channel": "email"},
        _at(day), channel="email",
    )  # fmt: skip
    converted = eventlog.track(
        {"user_id": user}, "Referral Converted", f"conv-{user}", {"referral_id": 1}, _at(day)
    )
    score = event(user, day, "Prediction Scored", f"clm-pred-1-{user}", p_alive=0.2)
    score["context"] = {"channel": OWN_CHANNEL}
    return [sent, converted, score]


def _write_own(db: Database, workspace_id: int, messages: list[dict[str, Any] | None]) -> None:
    result = ingest(db, workspace_id, [m for m in messages if m is not None], own=True)
    assert result.stored == len([m for m in messages if m is not None]), result.rejected


def test_the_definition() -> None:
    assert is_own_event("system") and not is_own_event(None) and not is_own_event("email")
    assert not is_touchpoint("email", "Prediction Scored")  # a model's score, imported
    assert is_touchpoint("email", "Email Opened") and is_touchpoint(None, None)


def test_clm_writers_use_the_system_channel(sqlite_db: Database) -> None:
    workspace_id, _, _ = load(sqlite_db, [event("m", "2024-01-01", "Signed Up", "m0")])
    _write_own(sqlite_db, workspace_id, _clm_events("m", "2024-01-02"))
    with report_source(sqlite_db, workspace_id) as source:
        e = source.events
        rows = source.run(e.select("name", "channel").order_by("name")).to_pylist()
    assert rows == [
        {"name": "Email Sent", "channel": "system"},
        {"name": "Prediction Scored", "channel": "system"},
        {"name": "Referral Converted", "channel": "system"},
        {"name": "Signed Up", "channel": None},
    ]


def test_a_client_cannot_write_on_the_system_channel(sqlite_db: Database) -> None:
    """The channel is reserved: refused from a client with the field named, the rest kept."""
    workspace_id, _, _ = load(sqlite_db, [])
    by_property = event("m", "2024-01-01", "Ad Clicked", "x1", channel="system")
    by_property["properties"]["channel"] = "system"
    by_context = event("m", "2024-01-01", "Ad Clicked", "x2")
    by_context["context"] = {"channel": "system"}
    fine = event("m", "2024-01-01", "Ad Clicked", "clm-lc-looks-like-ours", channel="search")
    result = ingest(sqlite_db, workspace_id, [by_property, by_context, fine])
    assert result.stored == 1
    assert [(r.index, r.errors[0]["loc"]) for r in result.rejected] == [
        (0, ["properties", "channel"]), (1, ["context", "channel"]),
    ]  # fmt: skip
    assert "reserved" in result.rejected[0].errors[0]["message"]


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_attribution_never_credits_clm_events(db: Database, engine: str) -> None:
    """lead -> trial, 30-day lookback, last touch:

    * m: search ad on 01-01; CLM sends an email, scores and converts m on 01-14; m moves on
      01-15. CLM's three events are not touchpoints: every model credits search with 1.
    * n: clicks an email on 01-05 whose message id starts ``clm-lc-`` (the customer's own id,
      not CLM's); moves on 01-06: email gets 1.
    * o: signs up on 01-02 (no channel), CLM's events on 01-10, moves on 01-12: no channel
      touchpoint, so ``(direct)`` gets 1.
    By type: "Ad Clicked" 1, "Email Clicked" 1, "Signed Up" 1; no CLM event name appears.
    """
    if engine == "duckdb" and db.dialect != "sqlite":
        pytest.skip("the DuckDB source reads the same export on both databases")
    messages = [
        event("m", "2024-01-01", "Ad Clicked", "m1", channel="search"),
        event("n", "2024-01-05", "Email Clicked", "clm-lc-7", channel="email"),
        event("o", "2024-01-02", "Signed Up", "o0"),
    ]
    workspace_id, customers, definition_id = load(db, messages)
    _write_own(db, workspace_id, [*_clm_events("m", "2024-01-14"), *_clm_events("o", "2024-01-10")])
    moves = [
        ("m", "2024-01-01", None, "lead"), ("m", "2024-01-15", "lead", "trial"),
        ("n", "2024-01-01", None, "lead"), ("n", "2024-01-06", "lead", "trial"),
        ("o", "2024-01-01", None, "lead"), ("o", "2024-01-12", "lead", "trial"),
    ]  # fmt: skip
    write_history(db, workspace_id, definition_id, customers, moves)
    period = {"since": "2024-01-01", "until": "2024-02-01", "from_stage": "lead"}
    for dimension, expected in [
        ("channel", {"search": 1.0, "email": 1.0, "(direct)": 1.0}),
        ("type", {"Ad Clicked": 1.0, "Email Clicked": 1.0, "Signed Up": 1.0}),
    ]:
        query = parse_query(AttributionQuery, {**period, "dimension": dimension})
        with report_source(db, workspace_id, engine) as source:  # type: ignore[arg-type]
            report = attribution(source, query)
        (pair,) = report.pairs
        assert pair.transitions == 3
        for rule in RULES:
            credits = {c.value: getattr(c, rule) for c in pair.channels}
            assert credits == expected, (dimension, rule)


def test_acquisition_first_touch_is_the_customers(db: Database) -> None:
    """p: CLM emails p on 01-01 (system), p arrives from social on 01-03 and buys on 01-05:
    first touch social. q: only CLM's events before buying on 01-08: (direct)."""
    messages = [
        event("p", "2024-01-03", "Page Viewed", "p1", channel="social"),
        event("p", "2024-01-05", "Order Completed", "p2", revenue=10),
        event("q", "2024-01-08", "Order Completed", "q2", revenue=10),
    ]
    workspace_id, _, _ = load(db, messages)
    _write_own(db, workspace_id, [*_clm_events("p", "2024-01-01"), *_clm_events("q", "2024-01-02")])
    query = parse_query(AcquisitionQuery, {"since": "2024-01-01", "until": "2024-02-01"})
    with report_source(db, workspace_id) as source:
        report = acquisition(source, query)
    assert {c.value: c.new_customers for c in report.channels} == {"social": 1, "(direct)": 1}


def test_acquisition_counts_only_the_customers_purchases(db: Database) -> None:
    """An ``Order Completed`` CLM wrote (system channel) neither acquires a customer nor pays
    back: r has only such a purchase (not new); p buys $10 on 01-05 (social), CLM writes a $50
    one on 01-20, p buys $25 on 03-10. Social spend $30 for January: CAC 30; p's own revenue
    per 30-day month from 01-05 is 10 (month 0), 25 (month 2) -> paid back in month 3 (the $50
    would have paid back in month 1)."""
    messages = [
        event("p", "2024-01-03", "Page Viewed", "p1", channel="social"),
        event("p", "2024-01-05", "Order Completed", "p2", revenue=10),
        event("p", "2024-03-10", "Order Completed", "p3", revenue=25),
    ]
    workspace_id, _, _ = load(db, messages)
    own = [
        event("r", "2024-01-06", "Order Completed", "clm-r", revenue=100),
        event("p", "2024-01-20", "Order Completed", "clm-p", revenue=50),
    ]
    for message in own:
        message["context"] = {"channel": OWN_CHANNEL}
    _write_own(db, workspace_id, own)
    assert import_spend(db, workspace_id, "channel,month,amount\nsocial,2024-01,30\n") == 1
    query = parse_query(AcquisitionQuery, {"since": "2024-01-01", "until": "2024-02-01"})
    with report_source(db, workspace_id) as source:
        report = acquisition(source, query, load_spend(db, workspace_id))
    rows = {c.value: c for c in report.channels}
    assert set(rows) == {"social"}
    assert (rows["social"].new_customers, rows["social"].cac) == (1, 30.0)
    assert rows["social"].payback_months == 3


def test_lifecycle_reads_a_customer_event_whatever_its_message_id(db: Database) -> None:
    """A purchase whose id starts with the lifecycle's own prefix is still the customer's:
    trial (the sign-up identifies m at once) -> paying (the test model: purchase_count >= 1)."""
    messages = [
        event("m", "2024-01-01", "Signed Up", "m1"),
        event("m", "2024-01-02", "Order Completed", "clm-lc-9-1-2-paying", revenue=5),
    ]
    workspace_id, _, _ = load(db, messages)
    _write_own(db, workspace_id, _clm_events("m", "2024-01-03"))
    for _ in range(2):  # the second run reads the first run's stage events: nothing changes
        run_lifecycle(db, workspace_id)
        with report_source(db, workspace_id) as source:
            t = source.transitions
            rows = source.run(t.order_by("ts").select("to_stage")).to_pylist()
        assert [r["to_stage"] for r in rows] == ["trial", "paying"]
