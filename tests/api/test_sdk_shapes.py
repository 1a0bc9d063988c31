"""Messages as real SDKs and clients shape them (issue 16, items 3 and 4)."""

from __future__ import annotations

from pathlib import Path

import httpx
from rudderstack.analytics import Client as RudderClient

from clm.ingest.importer import import_events
from tests.conftest import LiveServer, Tenant

ID_A = "123456789012345678901234567890"
ID_B = "123456789012345678901234567891"  # a float cannot tell it from ID_A


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def user_ids(server: LiveServer, tenant: Tenant) -> list[str | None]:
    reply = httpx.get(f"{server.url}/api/v1/customers", headers=bearer(tenant.secret_key))
    assert reply.status_code == 200, reply.text
    return sorted(c["user_id"] for c in reply.json()["items"])


def test_numeric_user_ids_stay_exact_over_http(live_server: LiveServer, tenant: Tenant) -> None:
    """Two different 30-digit ids sent as JSON numbers: two customers, ids as the digits."""
    body = (
        '{"batch": ['
        f'{{"type": "identify", "userId": {ID_A}, "messageId": "a", "traits": {{"n": 1}}}},'
        f'{{"type": "identify", "userId": {ID_B}, "messageId": "b", "traits": {{"n": 2}}}},'
        '{"type": "track", "userId": 18446744073709551615, "event": "Big", "messageId": "c",'
        ' "properties": {"count": 123456789012345678901234567890}}'
        "]}"
    )
    reply = httpx.post(
        f"{live_server.url}/v1/batch",
        content=body,
        auth=(tenant.write_key, ""),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["stored"] == 3, reply.text
    assert user_ids(live_server, tenant) == sorted([ID_A, ID_B, "18446744073709551615"])
    events = httpx.get(
        f"{live_server.url}/api/v1/events", params={"name": "Big"},
        headers=bearer(tenant.secret_key),
    ).json()["items"]  # fmt: skip
    # Other integers past 64 bits are read as floats on every path (JSON has no int type).
    assert events[0]["properties"] == {"count": 1.2345678901234568e29}


def test_numeric_user_ids_stay_exact_in_a_jsonl_import(
    live_server: LiveServer, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        f'{{"type": "identify", "userId": {ID_A}, "messageId": "a"}}\n'
        f'{{"type": "identify", "userId": {ID_B}, "messageId": "b"}}\n'
    )
    report = import_events(live_server.db, tenant.id, path)
    assert report.stored == 2 and not report.rejected
    assert user_ids(live_server, tenant) == sorted([ID_A, ID_B])


def test_rudderstack_identify_traits_come_from_context(
    live_server: LiveServer, tenant: Tenant
) -> None:
    """rudder-sdk-python puts identify traits only in ``context.traits``."""
    client = RudderClient(tenant.write_key, host=live_server.url, sync_mode=True, gzip=False)
    client.identify(user_id="r1", traits={"email": "Rae@Example.com", "plan": "pro", "seats": 3})
    client.flush()
    reply = httpx.get(
        f"{live_server.url}/api/v1/customers/lookup",
        params={"kind": "user_id", "value": "r1"},
        headers=bearer(tenant.secret_key),
    )
    assert reply.status_code == 200, reply.text
    customer = reply.json()
    assert customer["traits"] == {"email": "Rae@Example.com", "plan": "pro", "seats": 3}
    assert customer["email"] == "rae@example.com"


def test_top_level_traits_still_win_over_context_traits(
    live_server: LiveServer, tenant: Tenant
) -> None:
    message = {
        "userId": "s1",
        "traits": {"plan": "basic"},
        "context": {"traits": {"plan": "from-context", "email": "s1@example.com"}},
    }
    reply = httpx.post(f"{live_server.url}/v1/identify", json=message, auth=(tenant.write_key, ""))
    assert reply.status_code == 200, reply.text
    customer = httpx.get(
        f"{live_server.url}/api/v1/customers/lookup",
        params={"kind": "user_id", "value": "s1"},
        headers=bearer(tenant.secret_key),
    ).json()
    assert customer["traits"] == {"plan": "basic"}
