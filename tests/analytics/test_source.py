"""The default report period spans what the customers did, not what CLM wrote about them.

The log: customers ``a`` and ``b`` act from 2024-01-05 to 2024-03-15 10:00 (the last is ``a``
opening an email: a touchpoint CLM records, but the customer's). CLM writes later, through the
same paths engage uses: an ``Email Sent`` and a ``Message Blocked`` (``system`` channel), a
playbook's trait update (``identify`` on the ``system`` channel) and a ``Prediction Scored``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clm.analytics import REPORTS, run_report
from clm.analytics.source import by_customer, report_source
from clm.engage import eventlog
from clm.store.engine import Database
from tests.analytics.logs import event, load, ts

FIRST, CUSTOMER_END = "2024-01-05", "2024-03-15T10:00:00"
CLM_END = "2026-11-30"
SPARK = pytest.param(
    "spark", marks=[pytest.mark.slow, pytest.mark.filterwarnings("ignore::ResourceWarning")]
)


def _at(when: str) -> datetime:
    return datetime.fromtimestamp(ts(when), UTC)


def _sent(user: str, when: str, key: str, name: str = "Email Sent") -> dict[str, Any] | None:
    """What delivery (and the outbox, for a block) writes after a send, at CLM's clock."""
    properties = {"message_id": 1, "channel": "email", "category": "marketing"}
    return eventlog.track({"user_id": user}, name, key, properties, _at(when), channel="email")


def _clm_written() -> list[dict[str, Any] | None]:
    return [
        _sent("a", "2026-11-27", "sent-1"),
        _sent("b", "2026-11-28", "blocked-2", "Message Blocked"),
        {  # a playbook's trait update, as journey_steps writes it
            "type": "identify",
            "userId": "b",
            "traits": {"vip": True},
            "messageId": f"{eventlog.PREFIX}journey-1-0",
            "timestamp": _at("2026-11-29").isoformat(),
            "context": {"library": {"name": "clm-engage"}, "channel": "system"},
        },
        event("b", CLM_END, "Prediction Scored", "b-score", p_alive=0.4, clv_12m=10),
    ]


def _customer_log(db: Database) -> int:
    workspace_id, _, _ = load(
        db,
        [
            event("a", FIRST, "Signed Up", "a1", channel="social"),
            event("a", "2024-02-01", "Order Completed", "a2", revenue=20),
            event("b", "2024-03-01", "Order Completed", "b1", revenue=35),
        ],
    )
    opened = eventlog.track(  # as engage.tracking records the open pixel
        {"user_id": "a"}, "Email Opened", "open-1", {"message_id": 1, "category": "marketing"},
        _at(CUSTOMER_END), channel="email",
    )  # fmt: skip
    assert eventlog.write(db, workspace_id, [opened, *_clm_written()]) == 5
    return workspace_id


def test_bounds_leave_out_what_clm_wrote(db: Database) -> None:
    workspace_id = _customer_log(db)
    with report_source(db, workspace_id) as source:
        everything = source.run(source.events.aggregate(hi=source.events.ts.max())).to_pylist()
        assert everything == [{"hi": ts(CLM_END)}]  # CLM's events are in the report source
        assert source.bounds() == (ts(FIRST), ts(CUSTOMER_END))


@pytest.mark.parametrize("engine", ["duckdb", SPARK])
def test_bounds_are_the_same_on_every_engine(
    sqlite_db: Database, engine: str, request: pytest.FixtureRequest
) -> None:
    workspace_id = _customer_log(sqlite_db)
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    with report_source(sqlite_db, workspace_id, engine, spark=spark) as source:  # type: ignore[arg-type]
        assert source.bounds() == (ts(FIRST), ts(CUSTOMER_END))


def test_which_events_are_the_customers(sqlite_db: Database) -> None:
    workspace_id = _customer_log(sqlite_db)
    with report_source(sqlite_db, workspace_id, "duckdb") as source:
        e = source.events
        kept = source.run(e.filter(by_customer(e)).select("name", "type")).to_pylist()
    assert sorted(str(r["name"] or r["type"]) for r in kept) == [
        "Email Opened", "Order Completed", "Order Completed", "Signed Up",
    ]  # fmt: skip


def test_default_period_of_the_reports_ends_at_the_customers_last_event(db: Database) -> None:
    workspace_id = _customer_log(db)
    for engine in ("sql", "duckdb"):
        report = run_report(db, workspace_id, "funnel", engine=engine)  # type: ignore[arg-type]
        assert (report.since, report.until) == (_at(FIRST), _at(CUSTOMER_END).replace(second=1))


def test_explicit_period_still_wins(sqlite_db: Database) -> None:
    workspace_id = _customer_log(sqlite_db)
    until = run_report(sqlite_db, workspace_id, "funnel", {"until": "2026-12-31"}).until
    assert until == datetime(2026, 12, 31, tzinfo=UTC)
    period = {"since": "2026-11-01", "until": "2026-12-01"}  # only CLM's events in it
    report = run_report(sqlite_db, workspace_id, "churn_retention", period)
    assert (report.since, report.until) == (datetime(2026, 11, 1, tzinfo=UTC), _at("2026-12-01"))
    # only the since: the until still defaults to the customers' end
    report = run_report(sqlite_db, workspace_id, "funnel", {"since": "2024-02-01"})
    assert report.until == _at(CUSTOMER_END).replace(second=1)


def test_cohort_activity_is_the_customers(sqlite_db: Database) -> None:
    """``a`` bought in February and was only sent an email in March: not active in March."""
    workspace_id, _, _ = load(sqlite_db, [event("a", "2024-02-01", "Order Completed", "a1")])
    eventlog.write(sqlite_db, workspace_id, [_sent("a", "2024-03-10", "sent-1")])
    period = {"since": "2024-02-01", "until": "2024-04-01", "returning_event": "any"}
    report = run_report(sqlite_db, workspace_id, "cohorts", period)
    assert [(c.cohort, c.active_share) for c in report.cohorts] == [("2024-02", [1.0, 0.0])]


def test_a_log_of_only_clm_events_spans_those(db: Database) -> None:
    """No customer event at all (say, CLM mailed imported profiles): the default period falls
    back to what is in the log, and every report runs on it."""
    workspace_id, _, _ = load(db, [])
    stored = eventlog.write(
        db, workspace_id,
        [_sent("a", "2026-11-27", "sent-1"), _sent("a", CLM_END, "sent-2")],
    )  # fmt: skip
    assert stored == 2
    with report_source(db, workspace_id) as source:
        assert source.bounds() == (ts("2026-11-27"), ts(CLM_END))
    for name in REPORTS:
        report = run_report(db, workspace_id, name)
        assert (report.since, report.until) == (_at("2026-11-27"), _at(CLM_END).replace(second=1))


def test_an_empty_log_has_no_bounds(sqlite_db: Database) -> None:
    workspace_id, _, _ = load(sqlite_db, [])
    with report_source(sqlite_db, workspace_id) as source:
        assert source.bounds() is None
    report = run_report(sqlite_db, workspace_id, "funnel")
    assert report.since < report.until
