"""Funnel, churn and retention on the hand-built scenario (tests/analytics/scenario.py).

Worked out by hand from HISTORY, period [2024-01-01, 2024-04-01):
reach lead (first entry into lead or beyond) in the period: a, b, d, e (c entered in 2023);
reach trial-or-beyond: a 01-10, b 01-17, c 01-03 (skipped trial), e 03-16; e's move to paying
on 05-01 is after the period; reach paying-or-beyond: a 01-20, c 01-03; loyal: a 03-01.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from clm.analytics import (
    FunnelQuery,
    RetentionQuery,
    churn_retention,
    funnel,
    parse_query,
    prepare_source,
)
from clm.analytics.funnel import nearest_rank
from clm.analytics.source import report_source
from clm.errors import ValidationError
from clm.lifecycle.catalog import save_definition
from clm.lifecycle.loader import default_scorecard_text
from clm.store.models import HealthSnapshot
from tests.analytics.conftest import Loaded
from tests.analytics.logs import DAY, NO_CHURN_MODEL, load, ts, write_history
from tests.analytics.scenario import SINCE, UNTIL

PERIOD = {"since": SINCE, "until": UNTIL}


def test_funnel_counts_conversion_and_velocity(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = funnel(source, parse_query(FunnelQuery, PERIOD))
    # at 04-01: a back in paying (03-25), b churned, c paying again, d lead, e trial
    assert {c.stage: c.customers for c in report.counts} == {
        "lead": 1, "trial": 1, "paying": 2, "loyal": 0, "churned": 1,
    }  # fmt: skip
    steps = {(s.from_stage, s.to_stage): s for s in report.steps}
    lead = steps[("lead", "trial")]
    assert (lead.entered, lead.converted, lead.dropped) == (4, 3, 1)  # d never moved on
    assert lead.conversion_rate == 0.75 and lead.drop_off_rate == 0.25
    # a took 5 days, b 10, e 1: sorted [1, 5, 10]; nearest rank: median = 2nd, p90 = 3rd
    assert (lead.median_days, lead.p90_days) == (5.0, 10.0)
    trial = steps[("trial", "paying")]
    assert (trial.entered, trial.converted) == (4, 2)  # a (10 days) and c (skipped trial)
    # velocity counts a only: c never went through trial (not "0 days")
    assert (trial.timed, trial.median_days, trial.p90_days) == (1, 10.0, 10.0)
    paying = steps[("paying", "loyal")]
    assert (paying.entered, paying.converted) == (2, 1)
    assert paying.median_days == (ts("2024-03-01") - ts("2024-01-20")) / DAY
    assert [(b.source, b.target, b.value) for b in report.backward] == [("loyal", "paying", 1)]
    # paying re-entered by c (after churn, 03-10) and a (from loyal, 03-25)
    assert [(r.stage, r.reentries, r.customers) for r in report.reentries] == [("paying", 2, 2)]
    flow = {(f.source, f.target): f.value for f in report.flow}
    assert flow == {
        ("(new)", "lead"): 4, ("lead", "trial"): 3, ("trial", "paying"): 1,
        ("lead", "paying"): 1, ("paying", "loyal"): 1, ("trial", "churned"): 1,
        ("paying", "churned"): 1, ("churned", "paying"): 1, ("loyal", "paying"): 1,
    }  # fmt: skip
    assert sum(flow.values()) == 14  # 16 transitions, less c's 2023 entry and e's May move


def test_stage_counts_at_any_date(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = funnel(source, parse_query(FunnelQuery, {**PERIOD, "at": "2024-02-10"}))
    # before 02-10: a paying (01-20), b trial, c churned (02-01), d lead
    assert {c.stage: c.customers for c in report.counts} == {
        "lead": 1, "trial": 1, "paying": 1, "loyal": 0, "churned": 1,
    }  # fmt: skip


def test_churn_reactivation_and_revenue_retention(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = churn_retention(source, parse_query(RetentionQuery, PERIOD))
    jan, feb, mar = report.periods
    assert report.churn_stages == ["churned"]
    # Only buyers count: a (first purchase 01-20) and c (01-03); b, d, e never bought.
    # January: nobody had bought before it; a and c buy for the first time (both paying then)
    assert (jan.active_at_start, jan.new, jan.churned, jan.churn_rate) == (0, 2, 0, None)
    # February: c churns (02-01) out of 2 active; b's churn (a lead who never bought) is not
    assert (feb.active_at_start, feb.new, feb.churned, feb.reactivated) == (2, 0, 1, 0)
    assert feb.churn_rate == 0.5
    # March: c comes back; nobody buys for the first time (e only signs up)
    assert (mar.active_at_start, mar.new, mar.churned, mar.reactivated) == (1, 0, 0, 1)
    assert not any(p.partial for p in report.periods)
    assert "never bought" in report.definitions["customer"]
    assert [p.revenue for p in report.periods] == [140.0, 50.0, 90.0]
    # February: January's payers a (100) and c (40) bring 50 (a) -> NRR = GRR = 50 / 140
    assert feb.revenue_base == 140.0
    assert feb.net_revenue_retention == round(50 / 140, 6) == feb.gross_revenue_retention
    # March: February's payer a (50) brings 30; c's 60 is not from a February payer
    assert (mar.net_revenue_retention, mar.gross_revenue_retention) == (0.6, 0.6)
    assert jan.net_revenue_retention is None  # nobody paid before the period
    risk = report.at_risk
    # alive at 04-01: a and c (d and e are leads who never bought, b churned);
    # scored: a (0.9), c (latest 0.2; 0.95 in January is stale)
    assert (risk.alive_customers, risk.scored_customers, risk.customers) == (2, 2, 1)
    assert (risk.revenue_12m, risk.clv_12m) == (100.0, 50.0)  # c: 40 + 60; clv 50


def _health(scenario: Loaded, states: list[tuple[str, str, str]]) -> None:
    """Store a health history (customer, ISO date, state) under the default scorecard."""
    definition = save_definition(scenario.db, scenario.workspace_id, "health",
                                 default_scorecard_text())  # fmt: skip
    rows = [
        {"workspace_id": scenario.workspace_id, "definition_id": definition.id,
         "customer_id": scenario.customers[user], "ts": ts(day),
         "occurred_at": datetime.fromtimestamp(ts(day), UTC), "score": 50.0, "state": state,
         "contributions": {}, "cause_message_id": None}
        for user, day, state in states
    ]  # fmt: skip
    with scenario.db.transaction() as session:
        session.execute(insert(HealthSnapshot), rows)


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_at_risk_by_health_state_first_then_p_alive(scenario: Loaded, engine: str) -> None:
    # a: unhappy since 03-01 (P(alive) 0.9 would say safe); c: at risk in February, happy
    # again on 03-28 (P(alive) 0.2 would say at risk); e: unhappy only from 04-02, after
    # until, but a lead who never bought, like d: neither is an alive customer
    _health(scenario, [("a", "2024-02-01", "happy"), ("a", "2024-03-01", "unhappy"),
                       ("c", "2024-02-01", "at_risk"), ("c", "2024-03-28", "happy"),
                       ("e", "2024-04-02", "unhappy")])  # fmt: skip
    with report_source(scenario.db, scenario.workspace_id, engine) as source:  # type: ignore[arg-type]
        risk = churn_retention(source, parse_query(RetentionQuery, PERIOD)).at_risk
    assert (risk.alive_customers, risk.scored_customers, risk.health_customers) == (2, 2, 2)
    assert risk.customers == 1  # a only
    assert (risk.revenue_12m, risk.clv_12m) == (180.0, 200.0)  # a: 100 + 50 + 30; clv 200


def test_gross_retention_caps_expansion(db: object) -> None:
    from tests.analytics.logs import event

    messages = [
        event("x", "2024-01-10", "Order Completed", "x1", revenue=100),
        event("x", "2024-02-10", "Order Completed", "x2", revenue=150),
        event("y", "2024-01-11", "Order Completed", "y1", revenue=50),
        event("y", "2024-02-11", "Order Completed", "y2", revenue=20),
    ]
    workspace_id, _, _ = load(db, messages)  # type: ignore[arg-type]
    with report_source(db, workspace_id) as source:  # type: ignore[arg-type]
        report = churn_retention(source, parse_query(RetentionQuery, PERIOD))
    feb = report.periods[1]
    assert feb.net_revenue_retention == round(170 / 150, 6)
    assert feb.gross_revenue_retention == round((100 + 20) / 150, 6)


def test_model_without_churn_stage(db: object) -> None:
    from tests.analytics.logs import event

    workspace_id, customers, definition_id = load(
        db, [event("a", "2024-01-05", "Order Completed", "a1", revenue=5)],  # type: ignore[arg-type]
        model=NO_CHURN_MODEL,
    )  # fmt: skip
    moves = [("a", "2024-01-05", None, "lead"), ("a", "2024-01-05", "lead", "paying")]
    write_history(db, workspace_id, definition_id, customers, moves)  # type: ignore[arg-type]
    with report_source(db, workspace_id) as source:  # type: ignore[arg-type]
        report = churn_retention(source, parse_query(RetentionQuery, PERIOD))
        flow = funnel(source, parse_query(FunnelQuery, PERIOD))
    assert report.churn_stages == []
    assert all(p.churned is None and p.churn_rate is None for p in report.periods)
    assert report.at_risk.alive_customers == 1
    assert [(s.entered, s.converted) for s in flow.steps] == [(1, 1)]


def test_empty_workspace_and_empty_period(db: object) -> None:
    workspace_id, _, _ = load(db, [])  # type: ignore[arg-type]
    with report_source(db, workspace_id) as source:  # type: ignore[arg-type]
        report = funnel(source)
        retention = churn_retention(source)
        dated = funnel(source, parse_query(FunnelQuery, PERIOD))
    assert all(c.customers == 0 for c in report.counts)
    assert all(s.entered == 0 and s.conversion_rate is None for s in report.steps)
    assert retention.at_risk.alive_customers == 0
    assert [s.median_days for s in dated.steps] == [None, None, None]


def test_period_without_events(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = funnel(source, parse_query(FunnelQuery, {"since": "2030-01-01",
                                                          "until": "2030-02-01"}))  # fmt: skip
        retention = churn_retention(source, parse_query(RetentionQuery, {
            "since": "2030-01-01", "until": "2030-02-01"}))  # fmt: skip
    assert report.flow == [] and all(s.entered == 0 for s in report.steps)
    # the buyers alive at the end of the log (a, c) are still active in 2030
    assert [p.active_at_start for p in retention.periods] == [2]
    assert retention.periods[0].revenue == 0.0


def test_errors_name_the_field(scenario: Loaded) -> None:
    with pytest.raises(ValidationError) as unknown:
        parse_query(FunnelQuery, {"sinse": "2024-01-01"})
    assert unknown.value.errors[0].loc == ("sinse",)
    assert unknown.value.errors[0].message == "unknown report parameter"
    with pytest.raises(ValidationError) as bad_date:
        parse_query(FunnelQuery, {"since": "yesterday-ish"})
    assert bad_date.value.errors[0].loc == ("since",)
    with report_source(scenario.db, scenario.workspace_id) as source:
        with pytest.raises(ValidationError) as stage:
            funnel(source, parse_query(FunnelQuery, {"stage": "vip"}))
        assert stage.value.errors[0].loc == ("stage",)
        with pytest.raises(ValidationError) as order:
            funnel(source, parse_query(FunnelQuery, {"since": UNTIL, "until": SINCE}))
        assert order.value.errors[0].loc == ("since",)


def test_filters_by_stage_and_channel(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        paying = funnel(source, parse_query(FunnelQuery, {**PERIOD, "stage": "paying"}))
        email = funnel(source, parse_query(FunnelQuery, {**PERIOD, "channel": "email"}))
    assert {c.stage: c.customers for c in paying.counts}["paying"] == 2  # a and c only
    assert sum(c.customers for c in paying.counts) == 2
    assert sum(c.customers for c in email.counts) == 2  # a and e touched email


def test_nearest_rank() -> None:
    assert nearest_rank([(10, 1), (1, 1), (5, 1)], 0.5) == 5
    assert nearest_rank([(3, 4)], 0.9) == 3
    assert nearest_rank([], 0.5) is None


def test_a_partial_last_period_is_marked_and_has_no_retention(scenario: Loaded) -> None:
    """Until 03-15: March is cut short (a pays 30 on 03-01, c 60 on 03-10). Half a month's
    revenue against a whole February is no retention figure: March is marked partial and its
    NRR/GRR are None."""
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = churn_retention(source, parse_query(RetentionQuery, {
            "since": SINCE, "until": "2024-03-15"}))  # fmt: skip
    jan, feb, mar = report.periods
    assert (jan.partial, feb.partial, mar.partial) == (False, False, True)
    assert feb.net_revenue_retention == round(50 / 140, 6)
    assert (mar.net_revenue_retention, mar.gross_revenue_retention) == (None, None)
    assert mar.revenue == 90.0


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_at_risk_reads_the_scores_written_after_the_last_event(db: object, engine: str) -> None:
    """Scoring runs after the events it reads: a fit as of the last day is stamped at its end
    (midnight), health as time passes. The default period ends 1 s after the last customer
    event, and its at-risk count must still read those scores (what CLM knew at the end of the
    data), while an explicit ``until`` keeps only what was stamped before it."""
    from tests.analytics.logs import event

    last = "2024-03-10T12:00:00"  # the last customer event: the default until is 1 s after
    scored_at = "2024-03-11T00:00:00"  # the end of the last day
    messages = [
        event("x", "2024-01-10", "Order Completed", "x1", revenue=100),
        event("x", "2024-03-05", "Order Completed", "x2", revenue=40),
        event("y", "2024-02-01", "Order Completed", "y1", revenue=30),
        event("y", "2024-02-15", "Prediction Scored", "y-old",
              p_alive=0.8, clv_12m=60),
        event("y", last, "Page Viewed", "y2"),
        event("x", scored_at, "Prediction Scored", "x-fit",
              p_alive=0.9, clv_12m=120),
        event("y", scored_at, "Prediction Scored", "y-fit",
              p_alive=0.3, clv_12m=20),
    ]  # fmt: skip
    workspace_id, customers, definition_id = load(db, messages)  # type: ignore[arg-type]
    loaded = Loaded(db, workspace_id, customers, definition_id)  # type: ignore[arg-type]
    # x: happy at their purchase, unhappy when re-scored at the end of the day
    _health(loaded, [("x", "2024-03-05", "happy"), ("x", scored_at, "unhappy")])
    explicit = {"until": "2024-03-10T12:00:01"}  # the default's own instant, given
    with report_source(db, workspace_id, engine) as source:  # type: ignore[arg-type]
        default = churn_retention(source).at_risk
        before = churn_retention(source, parse_query(RetentionQuery, explicit)).at_risk
        later = churn_retention(source, parse_query(RetentionQuery, {"until": "2024-03-12"}))
    # Default: x unhappy (health decides), y P(alive) 0.3 < 0.5 (no health): both at risk;
    # revenue in the year before until: x 100 + 40, y 30; CLV 120 + 20 (y's 60 is stale)
    assert (default.alive_customers, default.scored_customers, default.health_customers) == (
        2, 2, 1,
    )  # fmt: skip
    assert (default.customers, default.revenue_12m, default.clv_12m) == (2, 170.0, 140.0)
    # Until given as the same instant: only y's February score (0.8, safe) and x happy
    assert (before.scored_customers, before.health_customers, before.customers) == (1, 1, 0)
    assert (before.revenue_12m, before.clv_12m) == (0.0, 0.0)
    # A later until reads the end-of-day scores, as the default does
    assert later.at_risk.customers == 2 and later.at_risk.clv_12m == 140.0


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_churn_of_a_stage_filter_after_prepare(scenario: Loaded, engine: str) -> None:
    """The customers the filter keeps, with their own first purchases, also where the source
    keeps the whole log's purchases (DuckDB after ``prepare_source``)."""
    # until 03-05: in "churned" then are b (a lead who never bought) and c (since 02-01;
    # back on 03-10, after until). Only c bought (first on 01-03).
    with report_source(scenario.db, scenario.workspace_id, engine) as source:  # type: ignore[arg-type]
        prepare_source(source)
        report = churn_retention(source, parse_query(RetentionQuery, {
            "since": SINCE, "until": "2024-03-05", "stage": "churned"}))  # fmt: skip
    jan, feb, mar = report.periods
    assert (jan.active_at_start, jan.new, jan.churned) == (0, 1, 0)
    assert (feb.active_at_start, feb.new, feb.churned, feb.churn_rate) == (1, 0, 1, 1.0)
    assert (mar.active_at_start, mar.new, mar.churned, mar.reactivated) == (0, 0, 0, 0)
    assert mar.partial and not feb.partial
    assert report.at_risk.alive_customers == 0  # c is churned at until
