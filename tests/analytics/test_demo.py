"""Every report on the CDNOW demo (40 customers, the classic stage model, predictions), checked
by invariants that hold whatever the data: the reports agree with each other and with the log."""

from __future__ import annotations

from typing import Any

import pytest

from clm.analytics import REPORTS, run_report
from clm.demo import build_demo
from clm.store.engine import Database

RULES = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov")


@pytest.mark.slow
def test_every_report_on_the_demo(sqlite_db: Database) -> None:
    demo = build_demo(sqlite_db, customers=40)
    ws = demo.workspace_id
    buyers = demo.customers  # every CDNOW customer has purchases
    assert buyers == 40
    reports: dict[str, Any] = {name: run_report(sqlite_db, ws, name) for name in REPORTS}

    funnel = reports["funnel"]
    assert sum(c.customers for c in funnel.counts) == 40  # everyone has a stage at the end
    for step, following in zip(funnel.steps, funnel.steps[1:], strict=False):
        assert 0 <= step.converted <= step.entered
        # reaching the next stage in the period means having reached this one before
        assert following.entered <= step.entered

    retention = reports["churn_retention"]
    for period in retention.periods:
        assert period.active_at_start >= 0 and period.churned is not None
        assert period.churned <= period.active_at_start + period.new + period.reactivated
    at_risk = retention.at_risk
    # at risk by a health state, else by a score: never more than those with either
    assert at_risk.customers <= at_risk.scored_customers + at_risk.health_customers
    assert at_risk.customers <= at_risk.alive_customers
    assert at_risk.scored_customers <= at_risk.alive_customers <= 40
    assert at_risk.health_customers <= at_risk.alive_customers

    cohorts = reports["cohorts"]
    assert sum(c.customers for c in cohorts.cohorts) == 40  # acquisition cohorts: everyone
    for cohort in cohorts.cohorts:
        # bought in the month they were acquired: at most all of them (the default returning
        # event is a purchase, and leads who never buy are in the acquisition cohorts)
        assert cohort.active_share[0] <= 1.0
        assert all(0 <= share <= 1 for share in cohort.active_share)
        assert cohort.repeat_purchase_rate == sorted(cohort.repeat_purchase_rate)

    rfm = reports["rfm"]
    assert sum(s.customers for s in rfm.segments) == buyers
    assert sum(c.customers for c in rfm.grid) == buyers

    for pair in reports["attribution"].pairs:
        assert pair.transitions <= pair.journeys
        for rule in RULES:  # every model shares out exactly the pair's transitions
            credited = sum(getattr(c, rule) for c in pair.channels)
            assert credited == pytest.approx(pair.transitions, abs=1e-4)

    acquisition = reports["acquisition"]
    assert sum(c.new_customers for c in acquisition.channels) == 40  # all first purchases

    feedback = reports["feedback"]
    assert feedback.over_time, "the demo has NPS answers"
    for row in feedback.over_time:
        assert -100 <= row.value <= 100 and row.responses > 0
    total = sum(r.responses for r in feedback.over_time)
    assert sum(r.responses for r in feedback.by_segment) == total
