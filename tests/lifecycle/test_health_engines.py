"""Health on all four engines: SQLite, PostgreSQL, DuckDB (columnar) and Spark give the
reference's scores and states at every instant, which are worked out by hand here for one
customer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from clm.ingest.service import ingest
from clm.lifecycle.engines import EngineName
from clm.lifecycle.health import CompiledScorecard, health_changes
from clm.lifecycle.health_service import compute_health_rows
from clm.lifecycle.loader import default_scorecard_text, load_scorecard
from clm.lifecycle.reference import reference_feature_rows
from clm.store.engine import Database
from clm.store.models import Customer
from tests.lifecycle.logs import DAY, T0, as_log_events, message, new_workspace

# PySpark leaves its local result sockets to the garbage collector (a ResourceWarning).
SPARK = pytest.param("spark", marks=pytest.mark.filterwarnings("ignore::ResourceWarning"))

LOG = [
    # a: a detractor with a sour comment, a ticket opened then resolved, a complaint
    message("a", 0, "a1", "NPS Survey Answered", score=3, comment="terrible service"),
    message("a", DAY, "a2", "Ticket Opened"),
    message("a", DAY, "a3", "Complaint Filed"),
    message("a", 5 * DAY, "a4", "Ticket Resolved"),
    message("a", 10 * DAY, "a5", "Order Completed", revenue=20),
    # b: a happy buyer whose payments fail, then a CSAT answer and a P(alive)
    message("b", 0, "b1", "Order Completed", revenue=50),
    message("b", 2 * DAY, "b2", "Payment Failed"),
    message("b", 2 * DAY, "b3", "Payment Failed"),
    message("b", 3 * DAY, "b4", "CSAT Survey Answered", score=5, comment="great"),
    message("b", 4 * DAY, "b5", "Prediction Scored", p_alive=0.2),
    message("b", 4 * DAY, "b6", "Plan Downgraded"),
    message("b", 200 * DAY, "b7", "NPS Survey Answered", score="ten"),  # a string: no score
    # c: one page view; its score is worked out by hand below
    message("c", 0, "c1", kind="page"),
]


def _changes(card: CompiledScorecard, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (row["customer_id"], row["ts"], round(total, 6), state, row["cause_message_id"])
        for row, total, state, _ in health_changes(card, rows)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sql", "duckdb", SPARK])
def test_health_equals_the_reference_on_every_engine(
    db: Database, engine: EngineName, request: pytest.FixtureRequest
) -> None:
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    workspace_id = new_workspace(db)
    result = ingest(db, workspace_id, LOG)
    assert result.stored == len(LOG), result.rejected
    with db.session() as session:
        customers = {u: c for u, c in session.execute(select(Customer.user_id, Customer.id))}
    card = load_scorecard(default_scorecard_text())
    changes = _changes(card, compute_health_rows(db, workspace_id, card, engine, spark))
    reference_rows = reference_feature_rows(card.feature_set, as_log_events(customers, LOG))
    assert changes == _changes(card, reference_rows)
    # c, default card (weights add up to 100). Sentiment: nps, comment and csat unknown, half
    # of 15 + 5 + 10; no tickets, complaints or refunds: 10 + 5 + 5; 35 of 50. Risk: one
    # touchpoint in 30 and in 180 days, trend 1 / (1 / 6) = 6, clipped: 20; no purchase (half
    # of 10), no failed payment 10, no downgrade 5, P(alive) unknown 2.5: 42.5 of 50.
    # Day 30: the page view leaves the 30-day window, trend 0: risk 22.5 of 50 < 0.5, at risk.
    # Day 180: it leaves the 180-day window too, 0 / 0 is unknown: half of 20, happy again.
    c = customers["c"]
    assert [row[:4] for row in changes if row[0] == c] == [
        (c, T0, 77.5, "happy"),
        (c, T0 + 30 * DAY, 57.5, "at_risk"),
        (c, T0 + 180 * DAY, 67.5, "happy"),
    ]
    assert {row[0] for row in changes} == set(customers.values())
