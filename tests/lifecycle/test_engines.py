"""One definition, four engines: SQLite, PostgreSQL, DuckDB and Spark give the reference's
answer, which is the history worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from clm.ingest.service import ingest
from clm.lifecycle.engines import EngineName
from clm.lifecycle.loader import load_stage_model, shipped_model
from clm.lifecycle.reference import reference_history
from clm.lifecycle.service import compute_transitions
from clm.store.engine import Database
from clm.store.models import Customer
from tests.lifecycle.cases import MESSAGES, expected_rows
from tests.lifecycle.logs import DAY, as_log_events, message, new_workspace
from tests.lifecycle.models import EVERYTHING


def _load(db: Database, messages: list[dict[str, Any]]) -> tuple[int, dict[str, int]]:
    workspace_id = new_workspace(db)
    result = ingest(db, workspace_id, messages)
    assert result.stored == len(messages), result.rejected
    with db.session() as session:
        rows = session.execute(select(Customer.user_id, Customer.id))
        return workspace_id, {user: cid for user, cid in rows if user}


def _rows(table: Any) -> list[tuple[Any, ...]]:
    data = table.to_pylist()
    return sorted(
        (
            r["customer_id"],
            r["ts"],
            r["from_stage"],
            r["to_stage"],
            r["rule"],
            r["cause_message_id"],
        )
        for r in data
    )


# PySpark leaves its local result sockets to the garbage collector (a ResourceWarning).
SPARK = pytest.param("spark", marks=pytest.mark.filterwarnings("ignore::ResourceWarning"))

CLASSIC_LOG = [
    message("a", 0, "a1", kind="page"),
    message("a", 10, "a2", kind="identify", email="a@example.com"),
    message("a", 20, "a3", "Order Completed", revenue=10),
    message("a", 30 * DAY, "a4", "Order Completed", revenue=5),
    message("a", 31 * DAY, "a5", "Referral Given"),
    message("b", 0, "b1", "Subscription Started"),
    message("b", 5 * DAY, "b2", "Subscription Renewed"),
    message("b", 9 * DAY, "b3", "Subscription Cancelled"),
    message("c", 0, "c1", "Prediction Scored", p_alive=0.05),
    message("c", 3, "c2", "Order Completed"),
    message("c", 4, "c3", "NPS Survey Answered", score="ten"),  # a string: not a score
]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sql", "duckdb", SPARK])
def test_engines_equal_the_hand_worked_history(
    db: Database, engine: EngineName, request: pytest.FixtureRequest
) -> None:
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    workspace_id, customers = _load(db, MESSAGES)
    model = load_stage_model(EVERYTHING)
    result = _rows(compute_transitions(db, workspace_id, model, engine, spark=spark))
    assert result == expected_rows(customers)
    reference = reference_history(model, as_log_events(customers, MESSAGES))
    assert result == sorted(
        (t.customer_id, t.ts, t.from_stage, t.to_stage, t.rule, t.cause_message_id)
        for t in reference
    )


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sql", "duckdb", SPARK])
def test_engines_equal_the_reference_on_the_classic_model(
    db: Database, engine: EngineName, request: pytest.FixtureRequest
) -> None:
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    workspace_id, customers = _load(db, CLASSIC_LOG)
    model = shipped_model("classic")
    result = _rows(compute_transitions(db, workspace_id, model, engine, spark=spark))
    reference = reference_history(model, as_log_events(customers, CLASSIC_LOG))
    assert result == sorted(
        (t.customer_id, t.ts, t.from_stage, t.to_stage, t.rule, t.cause_message_id)
        for t in reference
    )
    # a: reach, acquisition, conversion, retention, loyalty (referral), retention (180 days
    # after the last order), churned (365 days after it); b: conversion, retention (renewal),
    # churned (cancelled); c: churned from the start (P(alive) 0.05 < 0.1).
    assert [(r[0], r[3]) for r in result] == [
        (customers["a"], s)
        for s in (
            "reach",
            "acquisition",
            "conversion",
            "retention",
            "loyalty",
            "retention",
            "churned",
        )
    ] + [(customers["b"], s) for s in ("conversion", "retention", "churned")] + [
        (customers["c"], "churned")
    ]
