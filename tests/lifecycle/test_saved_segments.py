"""Saved segments: conditions evaluated in the database (SQLite and PostgreSQL) agree with the
per-customer evaluator and with the timestamps the test wrote; the size history worked out from
the stage history equals a day-by-day count done another way; bad conditions are field errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from clm.errors import Conflict, ValidationError
from clm.lifecycle import get_stage_model
from clm.lifecycle.conditions import Condition, conditions_hold
from clm.lifecycle.customer_list import CustomerQuery, matching_ids
from clm.lifecycle.saved_segments import (
    SegmentCreate,
    SegmentUpdate,
    backfill,
    create_segment,
    delete_segment,
    list_segments,
    members,
    record_sizes,
    sizes,
    update_segment,
)
from clm.store.engine import Database
from clm.store.models import Customer, SegmentSize, StageTransition
from tests.conftest import make_tenant
from tests.lifecycle.test_customer_list import NOW, seed_shop


def _create(db: Database, ws: int, name: str, conditions: list[dict[str, Any]]) -> Any:
    body = SegmentCreate(name=name, conditions=[Condition(**c) for c in conditions])
    return create_segment(db, ws, body, "test", now=NOW)


def test_list_filters_saved_as_conditions_select_in_the_database(db: Database) -> None:
    ws, ids = seed_shop(db)
    # seed_shop's last events: ann 400 days ago, bob 2, cid 1, dora 5.
    quiet = _create(db, ws, "quiet", [{"attr": "last_seen_days", "op": "gt", "value": 3}])
    assert quiet.size == 2
    page = members(db, ws, quiet.id, CustomerQuery())
    assert sorted(r.id for r in page.items) == sorted([ids["ann"], ids["dora"]])
    # Search is the list's q: part of a name, email or user id, case-insensitive.
    found = _create(db, ws, "ex", [{"attr": "search", "op": "contains", "value": "EXAMPLE.c"}])
    assert found.size == 2
    # %, _ are text, not wildcards.
    assert _create(db, ws, "pct", [{"attr": "search", "op": "contains", "value": "%"}]).size == 0
    # Two conditions: both must hold.
    both = _create(db, ws, "both", [
        {"attr": "search", "op": "contains", "value": "example"},
        {"attr": "last_seen_days", "op": "lt", "value": 100},
    ])  # fmt: skip
    assert matching_ids(db, ws, both.conditions, now=NOW) == [ids["dora"]]
    # The list's own filters still apply on top of a segment.
    narrowed = members(db, ws, quiet.id, CustomerQuery(q="dora"))
    assert [r.id for r in narrowed.items] == [ids["dora"]]
    assert [s.name for s in list_segments(db, ws)] == ["both", "ex", "pct", "quiet"]


def test_stage_and_health_conditions_match_each_customers_row(db: Database) -> None:
    ws, _ = seed_shop(db)
    rows = list(members_of_everyone(db, ws))
    for stage in {r.stage for r in rows if r.stage}:
        seg = _create(db, ws, f"s-{stage}", [{"attr": "stage", "value": stage}])
        assert seg.size == sum(r.stage == stage for r in rows)
        other = _create(db, ws, f"n-{stage}", [{"attr": "stage", "op": "ne", "value": stage}])
        assert other.size == sum(r.stage != stage for r in rows)  # no stage yet counts as "ne"
    risky = _create(
        db, ws, "risky", [{"attr": "health", "op": "in", "value": ["at_risk", "unhappy"]}]
    )
    assert risky.size == sum(r.health_state in ("at_risk", "unhappy") for r in rows)


def members_of_everyone(db: Database, ws: int) -> Any:
    from clm.lifecycle.customer_list import list_customers

    return list_customers(db, ws, CustomerQuery(per_page=500)).items


def test_bad_conditions_are_field_errors_and_names_are_unique(db: Database) -> None:
    ws, _ = seed_shop(db)
    with pytest.raises(ValidationError) as caught:
        _create(db, ws, "bad", [
            {"attr": "stage", "value": "active"},
            {"attr": "colour", "value": "red"},
            {"attr": "p_alive", "op": "gt", "value": "high"},
            {"attr": "stage", "value": "nirvana"},
            {"attr": "health", "value": "sad"},
            {"attr": "stage", "op": "gt", "value": "a"},
        ])  # fmt: skip
    locs = {e.loc: e.message for e in caught.value.errors}
    assert set(locs) == {("conditions", i) for i in (1, 2, 4, 5)}, locs
    assert "unknown attribute 'colour'" in locs[("conditions", 1)]
    # Stage names are checked once the conditions are otherwise valid.
    with pytest.raises(ValidationError) as caught:
        _create(db, ws, "bad", [{"attr": "stage", "value": "nirvana"}])
    assert caught.value.errors[0].loc == ("conditions", 0)
    assert "unknown stage 'nirvana'" in caught.value.errors[0].message
    _create(db, ws, "one", [{"attr": "health", "value": "happy"}])
    with pytest.raises(Conflict):
        _create(db, ws, "one", [{"attr": "health", "value": "unhappy"}])


# --- the SQL compiler and the per-customer evaluator agree -----------------------------------

TRAIT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.5, 2.5, -1.5]),
    st.sampled_from(["a", "b", "B", "é", "10", ""]),
)
CONDITIONS = st.builds(
    lambda name, op, value: Condition(attr=f"traits.{name}", op=op, value=value),
    st.sampled_from(["x", "y"]),
    st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "exists"]),
    st.one_of(st.integers(-5, 5), st.sampled_from([0.5, "a", "b", "10", True, False])),
) | st.builds(
    lambda name, values: Condition(attr=f"traits.{name}", op="in", value=values),
    st.sampled_from(["x", "y"]),
    st.lists(
        st.one_of(st.integers(-3, 3), st.sampled_from(["a", "B", True])), min_size=1, max_size=3
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    people=st.lists(
        st.fixed_dictionaries({}, optional={"x": TRAIT_VALUES, "y": TRAIT_VALUES}),
        min_size=1,
        max_size=8,
    ),
    conditions=st.lists(CONDITIONS, min_size=1, max_size=2),
)
def test_sql_and_python_evaluators_agree_on_traits(
    db: Database, people: list[dict[str, Any]], conditions: list[Condition]
) -> None:
    ws = _workspace_of_people(db, people)
    with db.session() as session:
        customers = session.execute(
            select(Customer.id, Customer.traits).where(Customer.workspace_id == ws)
        ).all()
    expected = sorted(
        cid for cid, traits in customers if conditions_hold(conditions, traits, None, None)
    )
    assert matching_ids(db, ws, conditions, now=NOW) == expected


_TENANTS: dict[str, int] = {}


def _workspace_of_people(db: Database, people: list[dict[str, Any]]) -> int:
    """A fresh workspace holding one customer per traits dict (written straight to the table,
    with JSON null kept as null)."""
    tenant = make_tenant(db, f"p{len(_TENANTS)}-{id(people)}")
    _TENANTS[tenant.slug] = tenant.id
    with db.transaction() as session:
        for index, traits in enumerate(people):
            session.add(Customer(workspace_id=tenant.id, user_id=f"u{index}", traits=traits,
                                 created_at=NOW))  # fmt: skip
    return tenant.id


# --- the size history -----------------------------------------------------------------------


def _count_on(transitions: list[tuple[int, int, str]], stages: list[str], day: date) -> int:
    """Members at the end of ``day``, counted by brute force: each customer's latest
    transition up to then."""
    end = int(datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC).timestamp())
    latest: dict[int, tuple[int, str]] = {}
    for customer, ts, stage in transitions:
        if ts < end and (customer not in latest or ts > latest[customer][0]):
            latest[customer] = (ts, stage)
    return sum(stage in stages for _, stage in latest.values())


def test_size_history_from_the_stage_history_equals_a_day_by_day_count(db: Database) -> None:
    ws, _ = seed_shop(db)
    with db.session() as session:
        stages = sorted(set(session.scalars(select(StageTransition.to_stage).where(
            StageTransition.workspace_id == ws))))  # fmt: skip
    chosen = stages[:2]
    seg = _create(db, ws, "stages", [{"attr": "stage", "op": "in", "value": chosen}])
    assert seg.backfilled and seg.history_from is not None
    history = sizes(db, ws, seg.id)
    points = {p.day: p.size for p in history.points}
    today = NOW.date()
    assert points[today] == seg.size
    # Every day from the first to yesterday: the step function through the stored points
    # equals the independent count.
    definition = get_stage_model(db, ws)[0].id
    with db.session() as session:
        transitions = [
            (int(c), int(t), str(s))
            for c, t, s in session.execute(
                select(
                    StageTransition.customer_id, StageTransition.ts, StageTransition.to_stage
                ).where(StageTransition.definition_id == definition)
            )
        ]
    day, size = history.history_from, 0
    assert day is not None
    assert _count_on(transitions, chosen, day - timedelta(days=1)) == 0
    while day < today:
        size = points.get(day, size)
        assert size == _count_on(transitions, chosen, day), day
        day += timedelta(days=1)
    assert history.points[0].size > 0  # the history starts on the first member's day


def test_history_starts_at_the_save_where_the_past_is_unknown(db: Database) -> None:
    ws, _ = seed_shop(db)
    conditions = [Condition(attr="last_seen_days", op="lt", value=30)]
    assert backfill(db, ws, conditions, NOW.date()) is None
    # "not unhappy" would count customers that had no health yet: not exact either.
    assert (
        backfill(db, ws, [Condition(attr="health", op="ne", value="unhappy")], NOW.date()) is None
    )
    seg = _create(db, ws, "recent", [c.model_dump() for c in conditions])
    assert (seg.backfilled, seg.history_from) == (False, NOW.date())
    # The live loop's daily step records each segment once a day.
    tomorrow = NOW + timedelta(days=1)
    assert record_sizes(db, ws, tomorrow) == 1
    assert record_sizes(db, ws, tomorrow) == 0
    assert [p.day for p in sizes(db, ws, seg.id).points] == [NOW.date(), tomorrow.date()]
    # New conditions mean another set of customers: the history starts again.
    _, after = update_segment(db, ws, seg.id, SegmentUpdate(conditions=[
        Condition(attr="last_seen_days", op="lt", value=3)]), now=NOW)  # fmt: skip
    assert after.size == 2  # bob 2 days, cid 1 day
    assert [p.size for p in sizes(db, ws, seg.id).points] == [2]
    delete_segment(db, ws, seg.id)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(SegmentSize)) == 0


def test_the_list_reads_the_latest_recorded_size_and_says_its_day(db: Database) -> None:
    ws, _ = seed_shop(db)
    seg = _create(db, ws, "mail", [{"attr": "search", "op": "contains", "value": "example"}])
    assert seg.size == 2 and seg.size_as_of is None  # saving counts now (and records it)
    [listed] = list_segments(db, ws)
    assert (listed.size, listed.size_as_of) == (2, NOW.date())
    # A later record is what the list shows (999: no count could give it), with its day.
    later = NOW.date() + timedelta(days=3)
    with db.transaction() as session:
        session.add(SegmentSize(segment_id=seg.id, day=later, size=999))
    [listed] = list_segments(db, ws)
    assert (listed.size, listed.size_as_of) == (999, later)
    # Asked for live, or with nothing recorded: counted now.
    [live] = list_segments(db, ws, live=True)
    assert (live.size, live.size_as_of) == (2, None)
    with db.transaction() as session:
        session.execute(SegmentSize.__table__.delete())
    [counted] = list_segments(db, ws)
    assert (counted.size, counted.size_as_of) == (2, None)
