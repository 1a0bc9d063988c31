"""The Segment tracking API on a live server: the official client, bad payloads, limits."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import httpx
import orjson
import pytest
from segment.analytics import Client
from sqlalchemy import func, select

from clm.store import customers as repo
from clm.store.models import Event
from tests.conftest import LiveServer, Tenant


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def stored(server: LiveServer) -> int:
    with server.db.session() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def post(server: LiveServer, path: str, body: Any, key: str | None, **kw: Any) -> httpx.Response:
    headers = basic(key) if key else {}
    headers.update(kw.pop("headers", {}))
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{server.url}{path}", content=content, headers=headers, **kw)


def test_official_segment_client_lands_merged_events(
    live_server: LiveServer, tenant: Tenant
) -> None:
    errors: list[Any] = []
    client = Client(
        tenant.write_key,
        host=live_server.url,
        sync_mode=True,
        gzip=True,
        on_error=lambda error, batch: errors.append(error),
        max_retries=0,
    )
    client.page(
        anonymous_id="visitor-1",
        name="Pricing",
        properties={"url": "https://shop.test/pricing?utm_medium=cpc"},
    )
    client.track(anonymous_id="visitor-1", event="Trial Started")
    client.identify(
        user_id="user-1",
        anonymous_id="visitor-1",
        traits={"email": "ann@example.com", "name": "Ann"},
    )
    client.group(user_id="user-1", group_id="acme", traits={"plan": "enterprise"})
    client.screen(user_id="user-1", name="Dashboard")
    client.alias(previous_id="crm-contact-77", user_id="user-1")
    client.track(user_id="user-1", event="Order Completed", properties={"revenue": 49.5})
    client.flush()
    assert errors == []
    with live_server.db.session() as session:
        customer = repo.find_customer(session, tenant.id, "user_id", "user-1")
        assert repo.find_customer(session, tenant.id, "anonymous_id", "visitor-1").id == customer.id
        assert repo.find_customer(session, tenant.id, "anonymous_id", "crm-contact-77").id == (
            customer.id
        )
        events = repo.timeline(session, tenant.id, customer.id)
    assert sorted(e.type for e in events) == sorted(
        ["page", "track", "identify", "group", "screen", "alias", "track"]
    )
    order = next(e for e in events if e.name == "Order Completed")
    assert order.revenue == 49.5
    assert customer.traits["name"] == "Ann"
    assert customer.event_count == 7


def test_single_calls_and_write_key_in_body(live_server: LiveServer, tenant: Tenant) -> None:
    response = post(
        live_server, "/v1/track", {"userId": "u", "event": "E", "messageId": "1"}, tenant.write_key
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    body_key = {"userId": "u", "event": "E", "messageId": "2", "writeKey": tenant.write_key}
    assert post(live_server, "/v1/track", body_key, None).status_code == 200
    # The URL says track: a body claiming another type is still a track.
    claimed = {"userId": "u", "event": "E", "messageId": "3", "type": "identify"}
    assert post(live_server, "/v1/track", claimed, tenant.write_key).status_code == 200
    with live_server.db.session() as session:
        types = {e.type for e in repo.list_events(session, tenant.id).items}
    assert types == {"track"}
    assert stored(live_server) == 3


def test_unknown_or_missing_key_is_401_and_stores_nothing(
    live_server: LiveServer, tenant: Tenant
) -> None:
    message = {"userId": "u", "event": "E"}
    for key in (None, "clm_wk_not-a-real-key"):
        response = post(live_server, "/v1/track", message, key)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        response = post(live_server, "/v1/batch", {"batch": [message]}, key)
        assert response.status_code == 401
    assert stored(live_server) == 0


def test_a_secret_or_admin_key_is_not_needed_but_admin_cannot_write(
    live_server: LiveServer, tenant: Tenant
) -> None:
    from clm.store import workspaces as ws

    with live_server.db.transaction() as session:
        admin = ws.issue_key(session, "admin")
    response = post(live_server, "/v1/track", {"userId": "u", "event": "E"}, admin.key)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        ({"userId": "u"}, ["event"], "required"),
        ({"event": "E"}, [], "userId or anonymousId"),
        ({"userId": "u", "event": ""}, ["event"], "at least 1"),
        ({"userId": True, "event": "E"}, ["userId"], "not a boolean"),
        ({"userId": "u", "event": "E", "properties": [1, 2]}, ["properties"], "dictionary"),
        ({"userId": "u", "event": "E", "timestamp": "yesterday"}, ["timestamp"], "datetime"),
    ],
)
def test_bad_messages_get_field_level_422(
    live_server: LiveServer, tenant: Tenant, body: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    response = post(live_server, "/v1/track", body, tenant.write_key)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert error["errors"][0]["loc"] == loc
    assert fragment in error["errors"][0]["message"]
    assert stored(live_server) == 0


def test_malformed_json_and_wrong_shapes_never_500(live_server: LiveServer, tenant: Tenant) -> None:
    for path, raw in [
        ("/v1/track", b"{not json"),
        ("/v1/batch", b"[1, 2"),
        ("/v1/batch", b'{"batch": "nope"}'),
        ("/v1/batch", b"[]"),
        ("/v1/identify", b'"a string"'),
        ("/v1/batch", b'{"batch": [1, "x", null]}'),
    ]:
        response = post(live_server, path, raw, tenant.write_key)
        assert response.status_code == 422, (path, raw, response.text)
        assert response.json()["code"] == "validation_error"
    response = post(
        live_server,
        "/v1/track",
        b"\x1f\x8b garbage",
        tenant.write_key,
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 422
    assert stored(live_server) == 0


def test_half_bad_batch_stores_the_good_and_reports_the_bad(
    live_server: LiveServer, tenant: Tenant
) -> None:
    batch = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "Ok", "messageId": "good-1"},
            {"type": "track", "userId": "u1", "messageId": "bad-1"},
            {"type": "teleport", "userId": "u1", "messageId": "bad-2"},
            {"type": "identify", "anonymousId": "a", "userId": "u1", "messageId": "good-2"},
            {"type": "track", "userId": "u1", "event": "x" * 40_000, "messageId": "big"},
        ]
    }
    response = post(live_server, "/v1/batch", batch, tenant.write_key)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["stored"] == 2
    assert [r["index"] for r in result["rejected"]] == [1, 2, 4]
    assert [r["messageId"] for r in result["rejected"]] == ["bad-1", "bad-2", "big"]
    assert result["rejected"][0]["errors"][0]["loc"] == ["event"]
    assert "teleport" in result["rejected"][1]["errors"][0]["message"]
    assert "limit" in result["rejected"][2]["errors"][0]["message"]
    assert stored(live_server) == 2
    # Sent again (a client retry), nothing is stored twice.
    again = post(live_server, "/v1/batch", batch, tenant.write_key).json()
    assert (again["stored"], again["duplicates"]) == (0, 2)
    assert stored(live_server) == 2


def test_size_limits_are_segments(live_server: LiveServer, tenant: Tenant) -> None:
    big_event = {"userId": "u", "event": "E", "properties": {"blob": "x" * 33_000}}
    assert post(live_server, "/v1/track", big_event, tenant.write_key).status_code == 413
    many = {
        "batch": [
            {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "y" * 20_000}}
            for _ in range(30)
        ]
    }
    response = post(live_server, "/v1/batch", many, tenant.write_key)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    # A gzip body is measured after decompression, so a small bomb is still refused.
    bomb = gzip.compress(
        orjson.dumps(
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "E",
                        "properties": {"z": "0" * 2_000_000},
                    }
                ]
            }
        )
    )
    assert len(bomb) < 50_000
    response = post(
        live_server, "/v1/batch", bomb, tenant.write_key, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert stored(live_server) == 0


def test_gzip_batch_and_clock_skew_correction(live_server: LiveServer, tenant: Tenant) -> None:
    # The client's clock runs exactly one hour fast: it says it sent at 13:00 an event it
    # recorded at 12:30. The server corrects by its own receipt time.
    batch = {
        "sentAt": "2030-01-01T13:00:00Z",
        "batch": [
            {
                "type": "track",
                "userId": "u",
                "event": "E",
                "messageId": "skew",
                "timestamp": "2030-01-01T12:30:00Z",
            }
        ],
    }
    response = post(
        live_server,
        "/v1/import",
        gzip.compress(orjson.dumps(batch)),
        tenant.write_key,
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    with live_server.db.session() as session:
        event = repo.list_events(session, tenant.id).items[0]
    lag = event.received_at - event.timestamp
    assert lag.total_seconds() == 30 * 60


def test_a_batch_with_a_message_that_is_no_object_is_refused_whole(
    live_server: LiveServer, tenant: Tenant
) -> None:
    good = {"type": "track", "userId": "u1", "event": "Ok", "messageId": "good-1"}
    response = post(live_server, "/v1/batch", {"batch": [good, 7]}, tenant.write_key)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert [e["loc"] for e in error["errors"]] == [["batch", 1]]
    assert "dictionary" in error["errors"][0]["message"]
    assert stored(live_server) == 0


def test_a_revoked_write_key_is_refused_at_once_though_it_was_just_used(
    live_server: LiveServer, tenant: Tenant
) -> None:
    manage = {"Authorization": f"Bearer {tenant.secret_key}"}
    issued = httpx.post(
        f"{live_server.url}/api/v1/keys", json={"kind": "write"}, headers=manage
    ).json()
    message = {"userId": "u", "event": "E", "messageId": "before-revocation"}
    assert post(live_server, "/v1/track", message, issued["key"]).status_code == 200
    revoked = httpx.delete(f"{live_server.url}/api/v1/keys/{issued['id']}", headers=manage)
    assert revoked.status_code == 204
    late = {"userId": "u", "event": "E", "messageId": "after-revocation"}
    assert post(live_server, "/v1/track", late, issued["key"]).status_code == 401
    assert post(live_server, "/v1/batch", {"batch": [late]}, issued["key"]).status_code == 401
    assert stored(live_server) == 1
