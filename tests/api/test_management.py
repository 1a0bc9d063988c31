"""The management API: unauthenticated → wrong tenant → not found → success, per endpoint."""

from __future__ import annotations

import httpx
import pytest

from clm.ingest import ingest
from clm.store import workspaces as ws
from tests.conftest import LiveServer, Tenant, make_tenant


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def populated(live_server: LiveServer, tenant: Tenant) -> Tenant:
    ingest(
        live_server.db,
        tenant.id,
        [
            {
                "type": "page",
                "anonymousId": "a1",
                "messageId": "m1",
                "timestamp": "2026-01-01T10:00:00Z",
            },
            {
                "type": "identify",
                "anonymousId": "a1",
                "userId": "u1",
                "messageId": "m2",
                "traits": {"email": "u1@example.com"},
                "timestamp": "2026-01-01T10:01:00Z",
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Order Completed",
                "messageId": "m3",
                "properties": {"revenue": 10},
                "timestamp": "2026-01-02T10:00:00Z",
            },
            {
                "type": "track",
                "userId": "u2",
                "event": "Order Completed",
                "messageId": "m4",
                "timestamp": "2026-01-03T10:00:00Z",
            },
        ],
    )
    return tenant


def test_customer_endpoints_walk_the_ladder(live_server: LiveServer, populated: Tenant) -> None:
    url = live_server.url + "/api/v1"
    other = make_tenant(live_server.db, "other")
    lookup = httpx.get(
        f"{url}/customers/lookup",
        params={"kind": "user_id", "value": "u1"},
        headers=bearer(populated.secret_key),
    )
    assert lookup.status_code == 200, lookup.text
    customer_id = lookup.json()["id"]
    path = f"{url}/customers/{customer_id}"
    assert httpx.get(path).status_code == 401
    assert httpx.get(path, headers=bearer("clm_sk_unknown")).status_code == 401
    # A write key is for sending events; it cannot read.
    assert httpx.get(path, headers=bearer(populated.write_key)).status_code == 403
    # Another workspace's secret key cannot see this customer at all.
    assert httpx.get(path, headers=bearer(other.secret_key)).status_code == 404
    assert (
        httpx.get(f"{url}/customers/999999", headers=bearer(populated.secret_key)).status_code
        == 404
    )
    detail = httpx.get(path, headers=bearer(populated.secret_key)).json()
    assert detail["user_id"] == "u1"
    assert detail["email"] == "u1@example.com"
    assert {(i["kind"], i["value"]) for i in detail["identities"]} == {
        ("anonymous_id", "a1"),
        ("user_id", "u1"),
        ("email", "u1@example.com"),
    }
    assert [r["outcome"] for r in detail["resolution"]] == ["new", "attached", "attached"]
    assert detail["event_count"] == 3
    timeline = httpx.get(f"{path}/timeline", headers=bearer(populated.secret_key)).json()
    assert [e["message_id"] for e in timeline] == ["m3", "m2", "m1"]


def test_events_page_through_in_order(live_server: LiveServer, populated: Tenant) -> None:
    url = live_server.url + "/api/v1/events"
    headers = bearer(populated.secret_key)
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 3} if after is None else {"limit": 3, "after": after}
        page = httpx.get(url, params=params, headers=headers).json()
        seen += [e["message_id"] for e in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ["m1", "m2", "m3", "m4"]
    orders = httpx.get(
        url, params={"name": "Order Completed", "since": "2026-01-03T00:00:00Z"}, headers=headers
    ).json()
    assert [e["message_id"] for e in orders["items"]] == ["m4"]
    bad = httpx.get(url, params={"limit": 0, "since": "not-a-date"}, headers=headers)
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["errors"]} == {
        ("query", "limit"),
        ("query", "since"),
    }


def test_workspaces_need_admin_and_keys_are_scoped(live_server: LiveServer, tenant: Tenant) -> None:
    url = live_server.url + "/api/v1"
    body = {"slug": "second-brand", "name": "Second brand"}
    assert httpx.post(f"{url}/workspaces", json=body).status_code == 401
    assert (
        httpx.post(f"{url}/workspaces", json=body, headers=bearer(tenant.secret_key)).status_code
        == 403
    )
    with live_server.db.transaction() as session:
        admin = ws.issue_key(session, "admin", name="ops")
    created = httpx.post(f"{url}/workspaces", json=body, headers=bearer(admin.key))
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["workspace"]["slug"] == "second-brand"
    assert httpx.post(f"{url}/workspaces", json=body, headers=bearer(admin.key)).status_code == 409
    bad = httpx.post(f"{url}/workspaces", json={"slug": "Not OK!"}, headers=bearer(admin.key))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["slug"]
    # The new secret key sees its own workspace, issues and revokes keys there.
    mine = bearer(new["secret_key"])
    assert httpx.get(f"{url}/workspace", headers=mine).json()["slug"] == "second-brand"
    key = httpx.post(f"{url}/keys", json={"kind": "write", "name": "web"}, headers=mine).json()
    assert key["key"].startswith("clm_wk_")
    listed = httpx.get(f"{url}/keys", headers=mine).json()
    assert len(listed) == 3
    assert all(new["secret_key"] not in str(k) for k in listed)  # keys are never shown again
    # Revoking another workspace's key is "not found", not a cross-tenant write.
    assert (
        httpx.delete(f"{url}/keys/{key['id']}", headers=bearer(tenant.secret_key)).status_code
        == 404
    )
    assert httpx.delete(f"{url}/keys/{key['id']}", headers=mine).status_code == 204
    track = httpx.post(
        f"{live_server.url}/v1/track", auth=(key["key"], ""), json={"userId": "u", "event": "E"}
    )
    assert track.status_code == 401


def test_workspace_stats_count_after_merges(live_server: LiveServer, populated: Tenant) -> None:
    # What CLM records about a customer (channel "system", written by CLM itself: own=True) is
    # not one of their touchpoints.
    ingest(live_server.db, populated.id, own=True, raws=[
        {"type": "track", "userId": "u1", "event": "Prediction Scored", "messageId": "clm-p1",
         "properties": {"channel": "system", "p_alive": 0.5},
         "timestamp": "2026-02-01T00:00:00Z"},
    ])  # fmt: skip
    response = httpx.get(
        f"{live_server.url}/api/v1/workspace/stats", headers=bearer(populated.secret_key)
    )
    assert response.status_code == 200, response.text
    stats = response.json()
    # a1 and u1 are one person; u2 another.
    assert (stats["customers"], stats["identified_customers"]) == (2, 2)
    assert (stats["events"], stats["system_events"]) == (4, 1)
    assert stats["events_by_type"] == {"identify": 1, "page": 1, "track": 2}
    assert "system" not in stats["events_by_channel"]
    assert (stats["purchases"], stats["revenue"]) == (2, 10.0)
    assert stats["first_event_at"].startswith("2026-01-01T10:00:00")
    assert stats["last_event_at"].startswith("2026-01-03T10:00:00")
