"""Cohorts and RFM, with the expected numbers worked out by hand in each test."""

from __future__ import annotations

from clm.analytics import CohortQuery, ReportQuery, cohorts, parse_query, rfm
from clm.analytics.source import report_source
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.own_events import OWN_CHANNEL
from tests.analytics.conftest import Loaded
from tests.analytics.logs import event, load
from tests.analytics.scenario import SINCE, UNTIL

PERIOD = {"since": SINCE, "until": UNTIL}


def test_acquisition_cohorts(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = cohorts(source, parse_query(CohortQuery, PERIOD))
        anything = cohorts(source, parse_query(CohortQuery, {**PERIOD, "returning_event": "any"}))
        viewed = cohorts(
            source, parse_query(CohortQuery, {**PERIOD, "returning_event": "Page Viewed"})
        )
    rows = {c.cohort: c for c in report.cohorts}
    assert list(rows) == ["2024-01", "2024-02", "2024-03"]  # c was acquired in 2023
    jan = rows["2024-01"]  # a and b
    assert jan.customers == 2
    # active by default = bought that month: a in January, February and March; b never
    assert report.returning_event == "Order Completed"
    assert jan.active_share == [0.5, 0.5, 0.5]
    assert rows["2024-02"].active_share == [0.0, 0.0]  # d never buys
    assert "'Order Completed'" in report.definitions["active"]
    # any activity: both in January; only a in February and March (b's score is not activity)
    rows = {c.cohort: c for c in anything.cohorts}
    assert rows["2024-01"].active_share == [1.0, 0.5, 0.5]
    # a named event: only a's page view on 01-05
    assert {c.cohort: c.active_share for c in viewed.cohorts}["2024-01"] == [0.5, 0.0, 0.0]
    assert jan.revenue_per_customer == [100 / 2, 150 / 2, 180 / 2]
    assert jan.repeat_purchase_rate == [0.0, 0.5, 0.5]  # a's second purchase in February
    assert rows["2024-02"].active_share == [1.0, 0.0]
    assert rows["2024-03"].active_share == [1.0]
    assert [(r.cohort, r.customers) for r in viewed.cohorts] == [
        (r.cohort, r.customers) for r in anything.cohorts
    ]


def test_first_purchase_cohorts(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        query = parse_query(CohortQuery, {**PERIOD, "cohort_by": "first_purchase"})
        report = cohorts(source, query)
    (jan,) = report.cohorts  # a (01-20) and c (01-03)
    assert (jan.cohort, jan.customers) == ("2024-01", 2)
    assert jan.active_share == [1.0, 0.5, 1.0]  # February: a; March: a and c
    assert jan.revenue_per_customer == [140 / 2, 190 / 2, 280 / 2]
    assert jan.repeat_purchase_rate == [0.0, 0.5, 1.0]  # a in Feb, c in March


def _buyers(db: Database) -> int:
    """u1..u5: u_i buys i times, 10*i each time, last on day i of March 2024."""
    messages = [
        event(f"u{i}", f"2024-03-{i:02d}", "Order Completed", f"u{i}-{k}", revenue=10 * i)
        for i in range(1, 6)
        for k in range(i)
    ]
    messages.append(event("u6", "2024-01-15", "Page Viewed", "u6-0"))  # never buys
    workspace_id, _, _ = load(db, messages)
    return workspace_id


def test_rfm_quintiles_and_segments(db: Database) -> None:
    workspace_id = _buyers(db)
    with report_source(db, workspace_id) as source:
        report = rfm(source, parse_query(ReportQuery, {"since": "2024-03-03",
                                                       "until": "2024-04-01"}))  # fmt: skip
    # five buyers with distinct values: ranks 0..4 -> scores 1..5; R = F = M = FM = i
    by_segment = {s.segment: s for s in report.segments if s.customers}
    assert {name: s.customers for name, s in by_segment.items()} == {
        "Champions": 1, "Loyal": 1, "Need attention": 1, "Hibernating": 1, "Lost": 1,
    }  # fmt: skip
    assert by_segment["Champions"].revenue == 5 * 50  # u5: 5 purchases of 50
    assert by_segment["Lost"].revenue == 10
    assert by_segment["Champions"].avg_recency_days == 31 - 5 + 1  # last bought 03-05
    assert by_segment["Champions"].share == 0.2
    assert sum(s.customers for s in report.segments) == 5  # u6 never bought
    assert {(c.recency, c.frequency_monetary) for c in report.grid} == {(i, i) for i in
                                                                          range(1, 6)}  # fmt: skip
    # on 03-03 only u1 and u2 had bought (u1 last on 03-01, u2 on 03-02): n = 2,
    # u1: ranks 0 -> R = F = M = 1, Lost; u2: ranks 1 -> 1 + 5 // 2 = 3 -> Need attention
    moves = {(m.from_segment, m.to_segment): m.customers for m in report.movement}
    assert moves == {
        ("(no purchase)", "Champions"): 1, ("(no purchase)", "Loyal"): 1,
        ("(no purchase)", "Need attention"): 1, ("Need attention", "Hibernating"): 1,
        ("Lost", "Lost"): 1,
    }  # fmt: skip


def test_rfm_counts_no_purchase_clm_wrote(db: Database) -> None:
    """An ``Order Completed`` on the system channel (CLM wrote it) makes nobody a buyer: u6
    still never bought, so the five buyers keep the scores worked out above."""
    workspace_id = _buyers(db)
    own = event("u6", "2024-03-20", "Order Completed", "clm-u6", revenue=1000)
    own["context"] = {"channel": OWN_CHANNEL}
    assert ingest(db, workspace_id, [own], own=True).stored == 1
    with report_source(db, workspace_id) as source:
        report = rfm(source, parse_query(ReportQuery, {"until": "2024-04-01"}))
    by_segment = {s.segment: s.customers for s in report.segments if s.customers}
    assert by_segment == {
        "Champions": 1, "Loyal": 1, "Need attention": 1, "Hibernating": 1, "Lost": 1,
    }  # fmt: skip
    assert sum(s.revenue for s in report.segments) == sum(10 * i * i for i in range(1, 6))


def test_rfm_ties_share_a_score(db: Database) -> None:
    messages = [event(u, "2024-03-01", "Order Completed", u, revenue=10) for u in "abcd"]
    workspace_id, _, _ = load(db, messages)
    with report_source(db, workspace_id) as source:
        report = rfm(source)
    # all equal: min rank 0 for everyone -> R = F = M = 1 -> Lost
    assert [(s.segment, s.customers) for s in report.segments if s.customers] == [("Lost", 4)]


def test_segment_filter(db: Database) -> None:
    workspace_id = _buyers(db)
    with report_source(db, workspace_id) as source:
        report = cohorts(source, parse_query(CohortQuery, {"segment": "Champions"}))
    assert [c.customers for c in report.cohorts] == [1]  # u5 only


def test_cohorts_from_the_kept_monthly_table_equal_the_direct_computation(
    scenario: Loaded,
) -> None:
    """DuckDB keeps the whole log's activity months; an ``until`` inside a month computes them
    directly instead. Both give the SQL engine's answer (computed directly every time)."""
    periods = [PERIOD, {"since": SINCE, "until": "2024-03-05"}, {"since": SINCE}]
    for by in ("acquisition", "first_purchase"):
        for period in periods:
            query = parse_query(CohortQuery, {**period, "cohort_by": by})
            with report_source(scenario.db, scenario.workspace_id) as source:
                expected = cohorts(source, query)
            with report_source(scenario.db, scenario.workspace_id, "duckdb") as source:
                assert cohorts(source, query) == expected
    # the cut month: c's second purchase (03-10) comes after 03-05, a's third (03-01) before
    query = parse_query(CohortQuery, {"since": SINCE, "until": "2024-03-05",
                                      "cohort_by": "first_purchase"})  # fmt: skip
    with report_source(scenario.db, scenario.workspace_id, "duckdb") as source:
        (jan,) = cohorts(source, query).cohorts
    assert jan.repeat_purchase_rate == [0.0, 0.5, 0.5]  # a in February; c not yet
    assert jan.active_share == [1.0, 0.5, 0.5]  # March: a only
    assert jan.revenue_per_customer == [140 / 2, 190 / 2, 220 / 2]
