"""Incremental = batch: any split of a random log into batches, arriving in any order (late
events included), updated batch by batch, ends with the history of one full recompute, which is
the reference's."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from clm.ingest.service import ingest
from clm.lifecycle.catalog import apply_stage_model
from clm.lifecycle.loader import load_stage_model
from clm.lifecycle.reference import reference_history
from clm.lifecycle.service import compute_transitions, update_lifecycle
from clm.store.engine import Database
from clm.store.models import Customer, StageTransition
from clm.store.workspaces import create_workspace
from tests.lifecycle.logs import DAY, as_log_events, message
from tests.lifecycle.models import EVERYTHING

NAMES = ["Order Completed", "Survey", "Email Opened", "Page Viewed"]
_slugs = itertools.count()


@st.composite
def event_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 14))
    messages = []
    for index in range(count):
        user = draw(st.sampled_from(["u0", "u1", "u2"]))
        seconds = draw(st.integers(0, 90)) * DAY + draw(st.sampled_from([0, 1, 3600]))
        name = draw(st.sampled_from(NAMES))
        props: dict[str, Any] = {}
        if name == "Order Completed":
            props["revenue"] = draw(st.sampled_from([5, 60, 150]))
        if name == "Survey":
            props["score"] = draw(st.integers(0, 10))
        if name == "Email Opened":
            props["channel"] = "email"
        if name == "Page Viewed" and draw(st.booleans()):
            props["plan"] = "pro"
        messages.append(message(user, seconds, f"m{index}", name, **props))
    return messages


def _stored(db: Database, workspace_id: int) -> list[tuple[Any, ...]]:
    with db.session() as session:
        rows = session.execute(
            select(
                StageTransition.customer_id,
                StageTransition.ts,
                StageTransition.from_stage,
                StageTransition.to_stage,
                StageTransition.rule,
                StageTransition.cause_message_id,
            ).where(StageTransition.workspace_id == workspace_id)
        )
        return sorted(tuple(r) for r in rows)


@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(log=event_logs(), data=st.data())
def test_incremental_updates_equal_one_full_recompute(
    sqlite_db: Database, log: list[dict[str, Any]], data: st.DataObject
) -> None:
    db = sqlite_db
    with db.transaction() as session:
        workspace_id = create_workspace(session, f"w{next(_slugs)}").id
    apply_stage_model(db, workspace_id, EVERYTHING)
    arrival = data.draw(st.permutations(log))  # late events: arrival order is not time order
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(log) - 1)), max_size=3)))
    batches = [arrival[a:b] for a, b in itertools.pairwise([0, *cuts, len(log)]) if a < b]
    for batch in batches:
        assert ingest(db, workspace_id, batch).stored == len(batch)
        update_lifecycle(db, workspace_id, engine="duckdb")
    incremental = _stored(db, workspace_id)

    model = load_stage_model(EVERYTHING)
    full = compute_transitions(db, workspace_id, model, "duckdb").to_pylist()
    batch_rows = sorted(
        (
            r["customer_id"],
            r["ts"],
            r["from_stage"],
            r["to_stage"],
            r["rule"],
            r["cause_message_id"],
        )
        for r in full
    )
    assert incremental == batch_rows

    with db.session() as session:
        customers = {
            u: c
            for u, c in session.execute(
                select(Customer.user_id, Customer.id).where(Customer.workspace_id == workspace_id)
            )
            if u is not None
        }
    reference = reference_history(model, as_log_events(customers, log))
    assert incremental == sorted(
        (t.customer_id, t.ts, t.from_stage, t.to_stage, t.rule, t.cause_message_id)
        for t in reference
    )
