"""The customer list's range filters (health score, P(alive), CLV, revenue, purchases, last
seen between days or not for N days), on SQLite and PostgreSQL: each checked against the
timestamps and amounts ``seed_shop`` wrote or against the unfiltered rows filtered in Python;
the same filters as saved-segment conditions give the same customers; bad bounds are field
errors at their own name; and on SQLite a range of the sorted column reads that column's index."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import text

from clm.lifecycle.conditions import Condition, condition_errors
from clm.lifecycle.customer_list import (
    CustomerQuery,
    RangeFilters,
    SortKey,
    customer_filter,
    list_customers,
)
from clm.store.engine import Database
from clm.store.models import Event, Identity
from tests.conftest import LiveServer, make_tenant
from tests.lifecycle.test_customer_list import NOW, seed_shop


def _found(db: Database, ws: int, ids: dict[str, int], **ranges: object) -> list[str]:
    query = CustomerQuery(ranges=RangeFilters.model_validate(ranges), per_page=500)
    by_id = {v: k for k, v in ids.items()}
    return sorted(by_id[r.id] for r in list_customers(db, ws, query, now=NOW).items)


def _score(db: Database, ws: int, ids: dict[str, int]) -> None:
    """Predictions for three customers (cid has none), as the prediction job stores them."""
    scores = {"ann": (0.2, 15.0), "bob": (0.9, 120.0), "dora": (0.7, 60.0)}
    with db.transaction() as session:
        for user, (p_alive, clv) in scores.items():
            identity = session.scalar(
                Identity.__table__.select()
                .with_only_columns(Identity.id)
                .where(Identity.customer_id == ids[user])
            )
            session.add(Event(
                workspace_id=ws, identity_id=identity, message_id=f"pred-{user}", type="track",
                name="Prediction Scored", user_id=user, anonymous_id=None, timestamp=NOW,
                ts=int(NOW.timestamp()), received_at=NOW, sent_at=None, original_timestamp=None,
                channel="system", campaign=None, source=None, revenue=None, currency=None,
                context={}, traits=None, properties={"p_alive": p_alive, "clv_12m": clv},
            ))  # fmt: skip


def test_money_counts_and_predictions_filter_in_the_database(db: Database) -> None:
    ws, ids = seed_shop(db)
    _score(db, ws, ids)
    # seed_shop's orders: ann 30 (1), bob 80 (1), dora 20 + 25 (2), cid none.
    assert _found(db, ws, ids, revenue_min=40) == ["bob", "dora"]
    assert _found(db, ws, ids, revenue_min=30, revenue_max=45) == ["ann", "dora"]
    assert _found(db, ws, ids, purchases_min=2) == ["dora"]
    assert _found(db, ws, ids, purchases_max=0) == ["cid"]
    # Scores written above: P(alive) ann .2, bob .9, dora .7; CLV 15, 120, 60; cid none.
    assert _found(db, ws, ids, p_alive_min=0.7) == ["bob", "dora"]
    assert _found(db, ws, ids, p_alive_max=0.5) == ["ann"]  # no score: not "at most .5"
    assert _found(db, ws, ids, clv_min=15, clv_max=60) == ["ann", "dora"]
    assert _found(db, ws, ids, clv_min=60, p_alive_max=0.8) == ["dora"]


def test_health_score_ranges_equal_the_unfiltered_rows_filtered_by_hand(db: Database) -> None:
    ws, ids = seed_shop(db)
    rows = list_customers(db, ws, CustomerQuery(), now=NOW).items
    scores = sorted({r.health_score for r in rows if r.health_score is not None})
    assert len(scores) >= 2, "seed_shop scores customers differently"
    by_id = {v: k for k, v in ids.items()}
    for low, high in ((scores[0], scores[0]), (scores[1], 100.0), (0.0, scores[-2])):
        expected = sorted(
            by_id[r.id]
            for r in rows
            if r.health_score is not None and low <= r.health_score <= high
        )
        assert _found(db, ws, ids, health_score_min=low, health_score_max=high) == expected


def test_last_seen_between_days_and_not_for_n_days(db: Database) -> None:
    ws, ids = seed_shop(db)
    # Last seen (their own events): cid 1 day ago, bob 2, dora 5, ann 400.
    assert _found(db, ws, ids, unseen_days=5) == ["ann", "dora"]  # 5 days counts as 5
    assert _found(db, ws, ids, unseen_days=6) == ["ann"]
    assert _found(db, ws, ids, unseen_days=0) == ["ann", "bob", "cid", "dora"]
    day = lambda days: (NOW - timedelta(days=days)).date()  # noqa: E731
    assert _found(db, ws, ids, seen_from=day(5)) == ["bob", "cid", "dora"]
    assert _found(db, ws, ids, seen_to=day(2)) == ["ann", "bob", "dora"]  # bob's day is in
    assert _found(db, ws, ids, seen_from=day(5), seen_to=day(2)) == ["bob", "dora"]
    assert _found(db, ws, ids, seen_from=day(400), seen_to=day(400)) == ["ann"]
    assert _found(db, ws, ids, seen_from=day(399), seen_to=day(6)) == []


def test_the_ranges_as_segment_conditions_give_the_same_customers(db: Database) -> None:
    ws, ids = seed_shop(db)
    _score(db, ws, ids)
    day = (NOW - timedelta(days=5)).date()
    ranges = RangeFilters(revenue_min=20, p_alive_min=0.5, seen_from=day, unseen_days=2)
    conditions = ranges.conditions()
    assert [c.model_dump() for c in conditions] == [
        {"attr": "p_alive", "op": "gte", "value": 0.5},
        {"attr": "revenue", "op": "gte", "value": 20.0},
        {"attr": "last_seen_date", "op": "gte", "value": day.isoformat()},
        {"attr": "last_seen_days", "op": "gte", "value": 2},
    ]
    assert condition_errors(conditions) == []
    by_ranges = list_customers(db, ws, CustomerQuery(ranges=ranges), now=NOW)
    by_conditions = list_customers(db, ws, CustomerQuery(), now=NOW, conditions=conditions)
    # bob: 80, .9, 2 days; dora: 45, .7, 5 days. Both meet all four.
    assert sorted(r.id for r in by_ranges.items) == sorted([ids["bob"], ids["dora"]])
    assert [r.id for r in by_conditions.items] == [r.id for r in by_ranges.items]


def test_date_conditions_are_checked_field_by_field() -> None:
    bad = [
        Condition(attr="last_seen_date", op="gte", value="2026-02-30"),
        Condition(attr="last_seen_date", op="lt", value=20260101),
        Condition(attr="last_seen_date", op="in", value=["2026-01-01"]),
        Condition(attr="purchases", op="gt", value="many"),
        Condition(attr="last_seen_date", op="exists"),
        Condition(attr="revenue", op="lte", value=10.5),
    ]
    found = [(e.loc, e.message) for e in condition_errors(bad)]
    assert found == [
        (("conditions", 0), "last_seen_date is a date, YYYY-MM-DD"),
        (("conditions", 1), "last_seen_date is a date, YYYY-MM-DD"),
        (("conditions", 2), "last_seen_date takes eq, ne, gt, gte, lt, lte or exists"),
        (("conditions", 3), "purchases is compared with a number"),
    ]


def test_a_range_of_the_sorted_column_reads_its_index(sqlite_db: Database) -> None:
    ws, _ = seed_shop(sqlite_db)
    for ranges, sort, index in (
        (RangeFilters(clv_min=10), SortKey.clv, "ix_customer_states_clv"),
        (RangeFilters(unseen_days=30), SortKey.last_seen, "ix_customer_states_last_seen"),
        (RangeFilters(revenue_max=50), SortKey.revenue, "ix_customer_states_revenue"),
        (RangeFilters(purchases_min=1), SortKey.purchases, "ix_customer_states_purchases"),
    ):
        query = CustomerQuery(ranges=ranges, sort=sort)
        statement = customer_filter(sqlite_db, ws, query, int(NOW.timestamp()))
        compiled = statement.compile(sqlite_db.engine, compile_kwargs={"literal_binds": True})
        with sqlite_db.session() as session:
            rows = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            plan = " ".join(str(r[-1]) for r in rows)
        assert f"USING COVERING INDEX {index}" in plan or f"USING INDEX {index}" in plan, plan
        assert "<" in plan or ">" in plan, plan  # a range of it, not a scan


def test_the_http_list_checks_each_bound_at_its_name(live_server: LiveServer) -> None:
    tenant = make_tenant(live_server.db, "ranges")
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {tenant.secret_key}"}
        for bad, field in (
            ("p_alive_min=2", "p_alive_min"),
            ("health_score_max=101", "health_score_max"),
            ("clv_min=inf", "clv_min"),
            ("revenue_max=1e400", "revenue_max"),
            ("purchases_min=-1", "purchases_min"),
            ("purchases_max=two", "purchases_max"),
            ("seen_from=2026-02-30", "seen_from"),
            ("unseen_days=-3", "unseen_days"),
            ("clv_min=50&clv_max=10", "clv_max"),
            ("seen_from=2026-03-01&seen_to=2026-02-01", "seen_to"),
        ):
            for path in ("/api/v1/customer-list", "/api/v1/customer-list.csv"):
                answer = client.get(f"{path}?{bad}", headers=auth)
                assert answer.status_code == 422, (bad, answer.text)
                assert [e["loc"] for e in answer.json()["errors"]] == [["query", field]], bad
        fine = client.get(
            "/api/v1/customer-list?clv_min=0&clv_max=10&seen_from=2026-01-01&unseen_days=0",
            headers=auth,
        )
        assert fine.status_code == 200 and fine.json()["total"] == 0
