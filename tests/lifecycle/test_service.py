"""Runs, stored history, queries and the lifecycle_stage_changed events, on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text

from clm.ingest.service import ingest
from clm.lifecycle.catalog import apply_stage_model, get_stage_model, list_definitions
from clm.lifecycle.loader import shipped_model_text
from clm.lifecycle.queries import customer_history, stage_at, stage_counts, transitions_between
from clm.lifecycle.service import run_lifecycle, tick, update_lifecycle
from clm.store.engine import Database
from clm.store.models import Customer, Event
from tests.lifecycle.logs import DAY, at, message, new_workspace

LOG = [
    message("a", 0, "a1", kind="page"),
    message("a", 10, "a2", kind="identify", email="a@example.com"),
    message("a", 20, "a3", "Order Completed", revenue=10),
    message("a", 30 * DAY, "a4", "Order Completed", revenue=5),
    message("a", 31 * DAY, "a5", "Referral Given"),
    message("b", 5, "b1", "Order Completed", revenue=1),
]


def _setup(db: Database) -> tuple[int, int, int]:
    workspace_id = new_workspace(db)
    ingest(db, workspace_id, LOG)
    with db.session() as session:
        ids = dict(session.execute(select(Customer.user_id, Customer.id)).all())
    return workspace_id, ids["a"], ids["b"]


def _own_events(db: Database) -> int:
    with db.session() as session:
        query = select(func.count()).where(Event.name == "lifecycle_stage_changed")
        return int(session.scalar(query) or 0)


def test_run_stores_history_and_answers_queries(db: Database) -> None:
    workspace_id, a, _b = _setup(db)
    result = run_lifecycle(db, workspace_id)
    # a: 7 transitions (reach .. loyalty, lapse to retention at day 210, churn at day 395);
    # b: conversion at 5 s, churned 365 days after that order.
    assert (result.customers, result.transitions) == (2, 9)
    assert stage_at(db, workspace_id, a, at(31 * DAY)).stage == "loyalty"  # type: ignore[union-attr]
    assert stage_at(db, workspace_id, a, at(31 * DAY - 1)).stage == "retention"  # type: ignore[union-attr]
    assert stage_at(db, workspace_id, a, at(209 * DAY)).stage == "loyalty"  # type: ignore[union-attr]
    assert stage_at(db, workspace_id, a, at(210 * DAY)).stage == "retention"  # type: ignore[union-attr]
    assert stage_at(db, workspace_id, a, at(-1)) is None
    history = customer_history(db, workspace_id, a)
    assert [(t.to_stage, t.kind, t.cause) for t in history] == [
        ("reach", "entry", "event"),
        ("acquisition", "forward", "event"),
        ("conversion", "forward", "event"),
        ("retention", "forward", "event"),
        ("loyalty", "forward", "event"),
        ("retention", "backward", "time"),
        ("churned", "exit", "time"),
    ]
    assert history[4].rule == "stage:loyalty" and history[4].cause_message_id == "a5"
    assert history[5].rule == "lapse:loyalty_lapsed"
    counts = stage_counts(db, workspace_id, at(100 * DAY))
    assert counts == {
        "reach": 0,
        "acquisition": 0,
        "conversion": 1,
        "retention": 0,
        "loyalty": 1,
        "churned": 0,
    }
    assert stage_counts(db, workspace_id)["churned"] == 2  # both lapsed long ago
    page = transitions_between(db, workspace_id, at(0), at(30 * DAY), limit=2, offset=1)
    assert page.total == 4  # a: reach, acquisition, conversion; b: conversion (day 30 excluded)
    assert [t.to_stage for t in page.items] == ["conversion", "acquisition"]


def test_events_are_announced_once_and_left_out_of_features(db: Database) -> None:
    workspace_id, _, _ = _setup(db)
    run_lifecycle(db, workspace_id)
    assert _own_events(db) == 9
    run_lifecycle(db, workspace_id, engine="duckdb")  # a recompute announces nothing new
    assert _own_events(db) == 9
    again = run_lifecycle(db, workspace_id)
    assert again.transitions == 9  # our own events did not feed back into the features


def test_new_events_update_only_touched_customers_and_tick_announces_due_lapses(
    db: Database,
) -> None:
    workspace_id, _a, b = _setup(db)
    run_lifecycle(db, workspace_id, now=at(40 * DAY))
    assert _own_events(db) == 6  # due by day 40: a's five, b's one
    ingest(db, workspace_id, [message("b", 2 * DAY, "b2", "Order Completed", revenue=2)])
    result = update_lifecycle(db, workspace_id, now=at(40 * DAY))
    assert (result.mode, result.customers) == ("incremental", 1)
    assert [t.to_stage for t in customer_history(db, workspace_id, b, as_of=at(40 * DAY))] == [
        "conversion",
        "retention",
    ]
    ticked = tick(db, workspace_id, now=at(250 * DAY))
    assert ticked.events_written == 1  # a's lapse to retention at day 210
    assert _own_events(db) == 8


def test_a_new_model_version_keeps_the_old_history(db: Database) -> None:
    workspace_id, a, _ = _setup(db)
    run_lifecycle(db, workspace_id)
    renamed = (
        shipped_model_text("classic")
        .replace("loyalty", "advocacy")
        .replace("version: 1", "version: 2")
    )
    info = apply_stage_model(db, workspace_id, renamed)
    assert info.version == 2
    run_lifecycle(db, workspace_id)
    new = [t.to_stage for t in customer_history(db, workspace_id, a, as_of=at(100 * DAY))]
    old = [
        t.to_stage for t in customer_history(db, workspace_id, a, as_of=at(100 * DAY), version=1)
    ]
    assert new[-1] == "advocacy" and old[-1] == "loyalty"
    assert [d.version for d in list_definitions(db, workspace_id)] == [1, 2]
    assert get_stage_model(db, workspace_id)[0].version == 2


def test_an_event_committed_after_a_run_under_a_smaller_id_is_not_missed(db: Database) -> None:
    """PostgreSQL: one writer draws an id, another commits a larger one, the first commits
    only after an update has read the log. The update must not move its watermark past it."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    workspace_id, _a, b = _setup(db)
    run_lifecycle(db, workspace_id, now=at(40 * DAY))
    with db.session() as session:
        template = session.scalars(select(Event).where(Event.message_id == "b1")).one()
        late_row = {c.name: getattr(template, c.name) for c in Event.__table__.columns}
    with db.engine.connect() as late:  # draws an id, commits its event only at the end
        late_id = late.execute(text("SELECT nextval(pg_get_serial_sequence('events', 'id'))"))
        late_row.update(
            id=late_id.scalar_one(),
            message_id="b2",
            ts=late_row["ts"] + 2 * DAY,
            timestamp=late_row["timestamp"] + timedelta(days=2),
        )
        ingest(db, workspace_id, [message("a", 32 * DAY, "a6", kind="page")])  # a larger id
        first = update_lifecycle(db, workspace_id, now=at(40 * DAY), settle_seconds=0)
        assert first.customers == 1  # a only: b's event is not committed yet
        late.execute(insert(Event).values(**late_row))
        late.commit()
    second = update_lifecycle(db, workspace_id, now=at(40 * DAY), settle_seconds=0)
    assert second.customers == 2  # the overlap is read again: a (idempotent) and b
    assert [t.to_stage for t in customer_history(db, workspace_id, b, as_of=at(40 * DAY))] == [
        "conversion",
        "retention",
    ]


def test_an_update_waits_for_a_writer_that_holds_a_smaller_id(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    workspace_id, _a, b = _setup(db)
    run_lifecycle(db, workspace_id, now=at(40 * DAY))
    with db.session() as session:
        template = session.scalars(select(Event).where(Event.message_id == "b1")).one()
        late_row = {c.name: getattr(template, c.name) for c in Event.__table__.columns}
    with db.engine.connect() as late:
        late_id = late.execute(text("SELECT nextval(pg_get_serial_sequence('events', 'id'))"))
        late_row.update(id=late_id.scalar_one(), message_id="b2", ts=late_row["ts"] + 2 * DAY)
        ingest(db, workspace_id, [message("a", 32 * DAY, "a6", kind="page")])
        late.execute(insert(Event).values(**late_row))
        timer = threading.Timer(0.3, late.commit)
        timer.start()
        result = update_lifecycle(db, workspace_id, now=at(40 * DAY), settle_seconds=30)
        timer.join()
    assert result.customers == 2  # waited for the late writer, then read both events
    assert [t.to_stage for t in customer_history(db, workspace_id, b, as_of=at(40 * DAY))] == [
        "conversion",
        "retention",
    ]
