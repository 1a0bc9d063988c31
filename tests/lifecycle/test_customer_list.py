"""The customer list: partial search, filters, sorting and paging done by the database, on
SQLite and PostgreSQL, checked against what each customer's own pages say and against the
timestamps the test wrote; the CSV is the same query; bad parameters are field errors."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx

from clm.ingest import ingest
from clm.lifecycle import run_lifecycle
from clm.lifecycle.customer import customer_lifecycle
from clm.lifecycle.customer_list import CustomerQuery, SortKey, export_csv, list_customers
from clm.lifecycle.health_current import score_health
from clm.lifecycle.health_explain import EXIT_REASON
from clm.store.engine import Database
from clm.store.models import Event, Identity
from tests.conftest import LiveServer, make_tenant

NOW = datetime.now(UTC).replace(microsecond=0)


def _at(days: int) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def seed_shop(db: Database) -> tuple[int, dict[str, int]]:
    tenant = make_tenant(db, "list")
    ingest(db, tenant.id, [
        {"type": "identify", "userId": "ann", "messageId": "a0", "timestamp": _at(401),
         "traits": {"email": "ann@example.com", "name": "Ann Lee"}},
        {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "a1",
         "properties": {"revenue": 30}, "timestamp": _at(400)},
        {"type": "track", "userId": "bob", "event": "Order Completed", "messageId": "b1",
         "properties": {"revenue": 80}, "timestamp": _at(10)},
        {"type": "page", "userId": "bob", "messageId": "b2", "timestamp": _at(2)},
        {"type": "identify", "userId": "bob", "messageId": "b0", "timestamp": _at(11),
         "traits": {"email": "bob@shop.io"}},
        {"type": "page", "userId": "cid", "messageId": "c1", "timestamp": _at(1)},
        {"type": "identify", "userId": "dora", "messageId": "d0", "timestamp": _at(31),
         "traits": {"email": "dora@example.com"}},
        {"type": "track", "userId": "dora", "event": "Order Completed", "messageId": "d1",
         "properties": {"revenue": 20}, "timestamp": _at(30)},
        {"type": "track", "userId": "dora", "event": "Order Completed", "messageId": "d2",
         "properties": {"revenue": 25}, "timestamp": _at(5)},
    ])  # fmt: skip
    run_lifecycle(db, tenant.id, now=NOW, settle_seconds=0)
    score_health(db, tenant.id, now=NOW)
    with db.session() as session:
        ids = dict(
            session.execute(
                Identity.__table__.select()
                .with_only_columns(Identity.value, Identity.customer_id)
                .where(Identity.workspace_id == tenant.id, Identity.kind == "user_id")
            ).all()
        )
    return tenant.id, {str(k): int(v) for k, v in ids.items()}


def _users(page: object, ids: dict[str, int]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[row.id] for row in page.items]  # type: ignore[attr-defined]


def test_search_sort_and_page_in_the_database(db: Database) -> None:
    ws, ids = seed_shop(db)
    everyone = list_customers(db, ws, CustomerQuery())
    assert everyone.total == 4
    # Newest activity first, from the timestamps written above: cid 1 day, bob 2, dora 5, ann 400.
    recent = list_customers(db, ws, CustomerQuery(sort=SortKey.last_seen, order="desc"))
    assert _users(recent, ids) == ["cid", "bob", "dora", "ann"]
    assert recent.items[0].last_seen_at == NOW - timedelta(days=1)
    # Partial, case-insensitive: email, name trait, user id, exact id.
    assert _users(list_customers(db, ws, CustomerQuery(q="EXAMPLE.com")), ids) == ["ann", "dora"]
    assert _users(list_customers(db, ws, CustomerQuery(q="lee")), ids) == ["ann"]
    assert _users(list_customers(db, ws, CustomerQuery(q="bo")), ids) == ["bob"]
    assert _users(list_customers(db, ws, CustomerQuery(q=str(ids["cid"]))), ids) == ["cid"]
    # Pages of 3: the second holds the fourth customer, the total stays 4.
    second = list_customers(
        db, ws, CustomerQuery(sort=SortKey.last_seen, order="desc", per_page=3, page=2)
    )
    assert (_users(second, ids), second.total) == (["ann"], 4)


def test_stage_and_health_columns_and_filters_agree_with_each_customers_page(
    db: Database,
) -> None:
    ws, ids = seed_shop(db)
    truth = {user: customer_lifecycle(db, ws, cid, None) for user, cid in ids.items()}
    rows = {row.id: row for row in list_customers(db, ws, CustomerQuery()).items}
    for user, state in truth.items():
        row = rows[ids[user]]
        assert row.stage == (state.stage.stage if state.stage else None), user
        assert row.health_state == (state.health.state if state.health else None), user
        if state.health and state.health.state != "happy":
            # The stored score's losing factors in the words of the customer's health page
            # ("Days since last purchase: 161 days (\u221217 points)"), which puts the exit
            # stage's own line first.
            labels = {f.label for f in state.health.factors}
            assert row.reasons and all(r.split(":")[0] in labels for r in row.reasons)
            assert all(r.endswith(("point)", "points)")) and "(\u2212" in r for r in row.reasons)
            same = [r for r in state.health.reasons if r != EXIT_REASON]
            assert row.reasons[: len(same)] == same
    for stage in {s.stage.stage for s in truth.values() if s.stage}:
        expected = sorted(ids[u] for u, s in truth.items() if s.stage and s.stage.stage == stage)
        found = list_customers(db, ws, CustomerQuery(stage=[stage]))
        assert sorted(r.id for r in found.items) == expected
    risky = sorted(
        ids[u] for u, s in truth.items() if s.health and s.health.state in ("at_risk", "unhappy")
    )
    found = list_customers(db, ws, CustomerQuery(health_state=["at_risk", "unhappy"]))
    assert sorted(r.id for r in found.items) == risky


def test_predictions_sort_by_clv_and_the_csv_is_the_same_query(db: Database) -> None:
    ws, ids = seed_shop(db)
    scores = {"ann": (0.2, 15.0), "bob": (0.9, 120.0), "dora": (0.7, 60.0)}
    with db.transaction() as session:
        for user, (p_alive, clv) in scores.items():
            identity = session.scalar(
                Identity.__table__.select()
                .with_only_columns(Identity.id)
                .where(Identity.customer_id == ids[user])
            )
            for days, factor in ((20, 0.5), (1, 1.0)):  # the newest score counts
                at = NOW - timedelta(days=days)
                session.add(Event(
                    workspace_id=ws, identity_id=identity, message_id=f"pred-{user}-{days}",
                    type="track", name="Prediction Scored", user_id=user, anonymous_id=None,
                    timestamp=at, ts=int(at.timestamp()), received_at=at, sent_at=None,
                    original_timestamp=None, channel="system", campaign=None, source=None,
                    revenue=None, currency=None, context={}, traits=None,
                    properties={"p_alive": p_alive * factor, "clv_12m": clv * factor},
                ))  # fmt: skip
    query = CustomerQuery(sort=SortKey.clv, order="desc")
    page = list_customers(db, ws, query)
    assert _users(page, ids) == ["bob", "dora", "ann", "cid"]  # no score: last
    assert [(r.p_alive, r.clv) for r in page.items[:3]] == [(0.9, 120.0), (0.7, 60.0), (0.2, 15.0)]
    rows = list(csv.DictReader(io.StringIO("".join(export_csv(db, ws, query)))))
    assert [int(r["id"]) for r in rows] == [r.id for r in page.items]
    assert rows[0]["clv"] == "120.0" and rows[3]["clv"] == ""


def test_rfm_segments_filter_and_revenue_sorts(db: Database) -> None:
    ws, ids = seed_shop(db)
    # By hand among the 3 buyers (score = 0-based rank * 5 // 3 + 1): recency ann 1, bob 2,
    # dora 4; frequency ann 1, bob 1, dora 4; monetary ann 1 (30), dora 2 (45), bob 4 (80);
    # fm = (f + m + 1) // 2: ann 1, bob 3, dora 3. So ann is Lost (r 1), bob At risk (r <= 2,
    # fm >= 3), dora a Potential loyalist (r >= 4); cid never bought.
    rows = {r.id: r for r in list_customers(db, ws, CustomerQuery()).items}
    assert {u: rows[c].rfm_segment for u, c in ids.items()} == {
        "ann": "Lost", "bob": "At risk", "cid": None, "dora": "Potential loyalists",
    }  # fmt: skip
    assert {u: (rows[c].purchases, rows[c].revenue) for u, c in ids.items()} == {
        "ann": (1, 30.0), "bob": (1, 80.0), "cid": (0, 0.0), "dora": (2, 45.0),
    }  # fmt: skip
    risky = list_customers(db, ws, CustomerQuery(rfm=["At risk", "Lost"]))
    assert sorted(_users(risky, ids)) == ["ann", "bob"] and risky.total == 2
    richest = list_customers(db, ws, CustomerQuery(sort=SortKey.revenue, order="desc"))
    assert _users(richest, ids) == ["bob", "dora", "ann", "cid"]
    by_segment = list_customers(db, ws, CustomerQuery(sort=SortKey.rfm))
    assert _users(by_segment, ids) == ["bob", "ann", "dora", "cid"]  # A, L, P; none last


def test_purchases_sorts_both_ways_with_ties_broken_by_id(db: Database) -> None:
    ws, ids = seed_shop(db)
    # Purchases by hand from seed_shop: ann 1, bob 1 (a tie), cid 0, dora 2.
    bought = {"ann": 1, "bob": 1, "cid": 0, "dora": 2}
    for order, reverse in (("asc", False), ("desc", True)):
        expected = sorted(bought, key=lambda u: (bought[u], ids[u]), reverse=reverse)
        query = CustomerQuery(sort=SortKey.purchases, order=order)
        assert _users(list_customers(db, ws, query), ids) == expected, order
        # Page by page (one a page) the same order: the tie is broken the same way each time.
        paged = [
            _users(list_customers(db, ws, query.model_copy(update={"per_page": 1, "page": n})), ids)
            for n in range(1, 5)
        ]
        assert [p[0] for p in paged] == expected, order


def test_the_http_list_validates_its_parameters(live_server: LiveServer) -> None:
    tenant = make_tenant(live_server.db, "http")
    ingest(live_server.db, tenant.id, [{"type": "page", "userId": "x", "messageId": "1"}])
    with httpx.Client(base_url=live_server.url, timeout=30) as client:  # a loaded CI box
        auth = {"Authorization": f"Bearer {tenant.secret_key}"}
        ok = client.get("/api/v1/customer-list?health_state=at_risk,unhappy&sort=clv", headers=auth)
        assert ok.status_code == 200 and ok.json()["total"] == 0
        by_purchases = client.get("/api/v1/customer-list?sort=purchases&order=desc", headers=auth)
        assert by_purchases.status_code == 200 and by_purchases.json()["total"] == 1
        bad_ones = ("health_state=sad", "sort=shoe_size", "per_page=0", "order=sideways",
                    "rfm=Champions,Royalty")  # fmt: skip
        for bad in bad_ones:
            answer = client.get(f"/api/v1/customer-list?{bad}", headers=auth)
            assert answer.status_code == 422, bad
            assert bad.split("=")[0] in str(answer.json()), bad
        assert client.get("/api/v1/customer-list").status_code == 401
        text = client.get("/api/v1/customer-list.csv?q=x", headers=auth).text
        assert text.splitlines()[0].startswith("id,user_id,email")
        assert len(text.splitlines()) == 2
