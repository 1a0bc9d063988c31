"""Acquisition economics and feedback, with hand-computed expectations."""

from __future__ import annotations

import pytest

from clm.analytics import (
    AcquisitionQuery,
    FeedbackQuery,
    acquisition,
    feedback,
    import_spend,
    parse_query,
    run_report,
)
from clm.analytics.spend import load_spend
from clm.errors import ValidationError
from clm.store.engine import Database
from tests.analytics.conftest import Loaded
from tests.analytics.logs import event, load, write_history

SPEND = """channel,campaign,month,amount,currency
email,welcome,2024-01,300,USD
search,,2024-01,100,USD
social,,2024-02,50,USD
"""


def _shop(db: Database) -> int:
    """p, q: first touch email then buy in January; r: search, buys; s: direct buyer."""
    messages = [
        event("p", "2024-01-02", "Email Clicked", "p1", channel="email"),
        event("p", "2024-01-03", "Order Completed", "p2", revenue=100),
        event("p", "2024-02-10", "Order Completed", "p3", revenue=80),
        event("p", "2024-01-20", "Prediction Scored", "p4", clv_12m=400, p_alive=0.9),
        event("q", "2024-01-05", "Ad Clicked", "q1", channel="email"),
        event("q", "2024-01-06", "Order Completed", "q2", revenue=20),
        event("q", "2024-01-07", "Prediction Scored", "q3", clv_12m=200, p_alive=0.5),
        event("r", "2024-01-09", "Ad Clicked", "r1", channel="search"),
        event("r", "2024-01-10", "Order Completed", "r2", revenue=150),
        event("s", "2024-01-11", "Order Completed", "s1", revenue=10),
    ]
    workspace_id, _, _ = load(db, messages)
    assert import_spend(db, workspace_id, SPEND) == 3
    return workspace_id


def test_cac_clv_and_payback(db: Database) -> None:
    workspace_id = _shop(db)
    report = run_report(db, workspace_id, "acquisition",
                        {"since": "2024-01-01", "until": "2024-04-01"})  # fmt: skip
    rows = {c.value: c for c in report.channels}  # type: ignore[attr-defined]
    email = rows["email"]
    assert (email.spend, email.new_customers, email.cac) == (300.0, 2, 150.0)
    assert email.clv_12m == 300.0 and email.clv_to_cac == 2.0  # (400 + 200) / 2
    # revenue per email customer: month 0: (100 + 20) / 2 = 60; month 1 (p's 80 on day 38): 100;
    # CAC 150 is never reached in the period
    assert email.payback_months is None
    search = rows["search"]
    assert (search.cac, search.payback_months, search.clv_12m) == (100.0, 1, None)
    assert rows["(direct)"].new_customers == 1 and rows["(direct)"].cac is None
    assert rows["social"].new_customers == 0 and rows["social"].spend == 50.0


def test_spend_is_prorated_and_replaced(db: Database) -> None:
    workspace_id = _shop(db)
    import_spend(db, workspace_id, "channel,month,amount\nsearch,2024-01,200\n")
    assert sorted(r.amount for r in load_spend(db, workspace_id)) == [50, 200, 300]
    with_spend = run_report(db, workspace_id, "acquisition",
                            {"since": "2024-01-01", "until": "2024-01-16T12:00:00"})  # fmt: skip
    rows = {c.value: c for c in with_spend.channels}  # type: ignore[attr-defined]
    assert rows["search"].spend == round(200 * 15.5 / 31, 6)


def test_spend_csv_errors_name_the_line(db: Database) -> None:
    workspace_id, _, _ = load(db, [])
    with pytest.raises(ValidationError) as caught:
        import_spend(db, workspace_id, "channel,month,amount\nemail,2024-13,5\n,2024-01,x\n")
    locs = [e.loc for e in caught.value.errors]
    assert locs == [("line", 2, "period"), ("line", 3, "channel")]
    with pytest.raises(ValidationError):
        import_spend(db, workspace_id, "channel,amount\nemail,5\n")


def test_feedback_trend_by_stage_and_segment(db: Database) -> None:
    messages = [
        event("a", "2024-01-10", "NPS Survey Answered", "a1", score=10),
        event("b", "2024-01-12", "NPS Survey Answered", "b1", score=3),
        event("c", "2024-01-15", "NPS Survey Answered", "c1", score=8),
        event("a", "2024-02-10", "NPS Survey Answered", "a2", score=9),
        event("a", "2024-02-11", "CSAT Survey Answered", "a3", score=5),
        event("b", "2024-02-12", "CSAT Survey Answered", "b2", score=2),
        event("c", "2024-02-13", "CES Survey Answered", "c2", score=3),
        event("c", "2024-02-14", "CES Survey Answered", "c3", score="easy"),  # not a number
        event("a", "2024-01-05", "Order Completed", "a4", revenue=10),
    ]
    workspace_id, customers, definition_id = load(db, messages)
    write_history(db, workspace_id, definition_id, customers, [
        ("a", "2024-01-05", None, "paying"), ("b", "2024-01-12", None, "lead"),
        ("c", "2024-01-15", None, "lead"), ("a", "2024-02-01", "paying", "loyal"),
    ])  # fmt: skip
    report = run_report(db, workspace_id, "feedback", {"since": "2024-01-01",
                                                        "until": "2024-03-01"})  # fmt: skip
    assert isinstance(report, type(report))
    trend = {(r.survey, r.key): r for r in report.over_time}  # type: ignore[attr-defined]
    # January NPS: 1 promoter (10), 1 passive (8), 1 detractor (3) -> 0
    assert (trend[("nps", "2024-01")].responses, trend[("nps", "2024-01")].value) == (3, 0.0)
    assert trend[("nps", "2024-02")].value == 100.0
    assert trend[("csat", "2024-02")].value == 50.0  # one of two satisfied
    assert (trend[("ces", "2024-02")].responses, trend[("ces", "2024-02")].value) == (1, 3.0)
    by_stage = {(r.survey, r.key): r for r in report.by_stage}  # type: ignore[attr-defined]
    # a answered NPS as paying (Jan) and as loyal (Feb); b and c as leads
    assert by_stage[("nps", "paying")].responses == 1
    assert by_stage[("nps", "loyal")].value == 100.0
    assert by_stage[("nps", "lead")].value == round(100 * (0 - 1) / 2, 6)
    by_segment = {(r.survey, r.key) for r in report.by_segment}  # type: ignore[attr-defined]
    assert ("nps", "(no purchase)") in by_segment and ("nps", "Lost") in by_segment


def test_feedback_empty_and_unknown_parameters(scenario: Loaded) -> None:
    report = run_report(scenario.db, scenario.workspace_id, "feedback")
    assert report.over_time == []  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as caught:
        run_report(scenario.db, scenario.workspace_id, "feedback", {"colour": "red"})
    assert caught.value.errors[0].loc == ("colour",)
    with pytest.raises(ValidationError) as unknown:
        run_report(scenario.db, scenario.workspace_id, "nope")
    assert unknown.value.errors[0].loc == ("report",)
    assert parse_query(FeedbackQuery, {"granularity": "quarter"}).granularity == "quarter"
    assert parse_query(AcquisitionQuery, {}).dimension == "channel"
    assert callable(acquisition) and callable(feedback)


def test_survey_answered_counts_each_response_once(db: Database) -> None:
    """CLM's own ``survey_answered`` events next to the older per-survey names."""
    messages = [
        event("a", "2024-01-10", "survey_answered", "sa1", survey_type="nps", score=10,
              response_id="r1", revision=1),
        # a's comment after the one-click answer: the same response, not a second one
        event("a", "2024-01-10T00:05:00", "survey_answered", "sa2", survey_type="nps", score=10,
              response_id="r1", revision=2, comment="love it", sentiment=0.6),
        event("b", "2024-01-12", "survey_answered", "sb1", survey_type="nps", score=9,
              response_id="r2", revision=1),
        # b's second revision changed the score: the latest revision counts
        event("b", "2024-01-12T00:05:00", "survey_answered", "sb2", survey_type="nps", score=3,
              response_id="r2", revision=2, comment="slow", sentiment=-0.4),
        event("c", "2024-01-15", "NPS Survey Answered", "sc1", score=8),
        event("c", "2024-01-20", "survey_answered", "sc2", survey_type="csat", score=5,
              response_id="r3", revision=1),
        event("d", "2024-01-21", "survey_answered", "sd1", survey_type="custom", score=4,
              response_id="r4", revision=1),  # not NPS, CSAT or CES: left out
        event("d", "2024-01-22", "survey_answered", "sd2", survey_type="ces", score=2,
              response_id="r5", revision=1),
    ]  # fmt: skip
    workspace_id, _, _ = load(db, messages)
    params = {"since": "2024-01-01", "until": "2024-02-01"}
    report = run_report(db, workspace_id, "feedback", params)
    trend = {(r.survey, r.key): r for r in report.over_time}  # type: ignore[attr-defined]
    # NPS: a 10 (promoter), b 3 (detractor, its latest revision), c 8 (passive): 3 responses,
    # 100 * (1 - 1) / 3 = 0. Counting every event would give 4 responses and NPS 50.
    nps = trend[("nps", "2024-01")]
    assert (nps.responses, nps.value, nps.mean_score) == (3, 0.0, 7.0)
    csat = trend[("csat", "2024-01")]
    assert (csat.responses, csat.value) == (1, 100.0)  # c's 5
    assert (trend[("ces", "2024-01")].responses, trend[("ces", "2024-01")].value) == (1, 2.0)
    assert set(trend) == {("nps", "2024-01"), ("csat", "2024-01"), ("ces", "2024-01")}
    on_duckdb = run_report(db, workspace_id, "feedback", params, engine="duckdb")
    assert on_duckdb == report
