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
    changes = _changes(card, compute_health_rows(db, workspace_id, card, engine, spark).to_pylist())
    reference_rows = reference_feature_rows(card.feature_set, as_log_events(customers, LOG))
    assert changes == _changes(card, reference_rows)
    # c, default card: one page view. Present factors only (the rest have no data and are
    # left out): frequency (40; no purchase in 365 days: 0) and engagement (3; one touchpoint
    # in 30 and in 180 days, trend 1 / (1 / 6) = 6, clipped: full) -> 100 * 3 / 43 = 6.98;
    # risk share 0.07 < 0.5: at risk (no sentiment evidence is not unhappiness). Day 30 the view
    # leaves the 30-day window: trend 0 -> 0 points. Day 180 it leaves the 180-day window:
    # 0 / 0 is unknown, scored at the stated prior 0: no change, no row.
    c = customers["c"]
    assert [row[:4] for row in changes if row[0] == c] == [
        (c, T0, 6.976744, "at_risk"),
        (c, T0 + 30 * DAY, 0.0, "at_risk"),
    ]
    assert {row[0] for row in changes} == set(customers.values())
