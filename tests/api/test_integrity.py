"""Management API integrity (issue 16, item 5): a key acts on its own workspace's customers
only, and refusals say so with a status and a code."""

from __future__ import annotations

import httpx
import orjson

from clm.ingest import ingest
from tests.conftest import LiveServer, Tenant, make_tenant


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _customer(server: LiveServer, tenant: Tenant, user_id: str) -> int:
    ingest(server.db, tenant.id, [{"type": "identify", "userId": user_id, "messageId": user_id}])
    reply = httpx.get(
        f"{server.url}/api/v1/customers/lookup",
        params={"kind": "user_id", "value": user_id},
        headers=bearer(tenant.secret_key),
    )
    return int(reply.json()["id"])


def test_points_go_only_to_the_callers_own_existing_customers(
    live_server: LiveServer, tenant: Tenant
) -> None:
    other = make_tenant(live_server.db, "other")
    mine, theirs = _customer(live_server, tenant, "ann"), _customer(live_server, other, "bob")
    url, headers = f"{live_server.url}/api/v1/engage/points", bearer(tenant.secret_key)
    for customer_id in (theirs, theirs + 1000):  # another workspace's, and nobody's
        for action in ("earn", "redeem"):
            body = {"customer_id": customer_id, "points": 10, "txn_id": f"t-{customer_id}"}
            reply = httpx.post(f"{url}/{action}", json=body, headers=headers)
            assert reply.status_code == 404, (action, customer_id, reply.text)
    # Nothing was written for the other workspace's customer, seen from its own key.
    statement = httpx.get(f"{url}/{theirs}", headers=bearer(other.secret_key))
    assert statement.status_code == 200 and statement.json() == []
    earned = httpx.post(
        f"{url}/earn", json={"customer_id": mine, "points": 10, "txn_id": "ok"}, headers=headers
    )
    assert earned.status_code == 200 and earned.json() == {"balance": 10}


def test_a_customers_lifecycle_is_404_for_ids_the_caller_does_not_own(
    live_server: LiveServer, tenant: Tenant
) -> None:
    other = make_tenant(live_server.db, "other")
    mine, theirs = _customer(live_server, tenant, "ann"), _customer(live_server, other, "bob")
    url, headers = f"{live_server.url}/api/v1/customers", bearer(tenant.secret_key)
    assert httpx.get(f"{url}/{mine}/lifecycle", headers=headers).status_code == 200
    for customer_id in (theirs, theirs + 1000):
        reply = httpx.get(f"{url}/{customer_id}/lifecycle", headers=headers)
        assert reply.status_code == 404, reply.text
        assert reply.json()["code"] == "not_found"


def test_the_policy_answers_what_its_schema_says(live_server: LiveServer, tenant: Tenant) -> None:
    """Quiet hours are local wall-clock times: the schema says ``HH:MM[:SS]``, no offset (it
    said ``format: time``, which requires one, and the answer broke it)."""
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    quiet = spec["components"]["schemas"]["QuietHours"]["properties"]["start"]
    assert "format" not in quiet and quiet["pattern"].startswith("^")
    policy = httpx.get(
        f"{live_server.url}/api/v1/engage/policy", headers=bearer(tenant.secret_key)
    ).json()
    assert policy["quiet_hours"]["start"] == "21:00:00"
    assert orjson.loads(orjson.dumps(policy)) == policy
