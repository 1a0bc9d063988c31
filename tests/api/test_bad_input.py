"""Input that used to get in wrong or answer 500 (issue 16, items 1–3), over real HTTP on
SQLite and PostgreSQL."""

from __future__ import annotations

import math

import httpx
import orjson
import pytest
from sqlalchemy import text

from tests.conftest import LiveServer, Tenant

BIG = 2**70  # past 64 bits


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def send_batch(
    server: LiveServer, tenant: Tenant, body: bytes | dict[str, object]
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        f"{server.url}/v1/batch",
        content=content,
        auth=(tenant.write_key, ""),
        headers={"Content-Type": "application/json"},
    )


def test_nul_characters_are_stripped_the_same_on_both_databases(
    live_server: LiveServer, tenant: Tenant
) -> None:
    batch = [
        {"type": "track", "userId": "ann", "event": "Viewed", "messageId": "ok-1"},
        {
            "type": "track",
            "userId": "bob\u0000",
            "event": "Order\u0000 Completed",
            "messageId": "nul-1",
            "properties": {"note\u0000": "a\u0000b", "nested": ["x\u0000"], "revenue": 5},
            "context": {"userAgent": "agent\u0000/1"},
        },
        {"type": "identify", "userId": "cy", "traits": {"name": "C\u0000y"}, "messageId": "nul-2"},
    ]
    reply = send_batch(live_server, tenant, {"batch": batch})
    assert reply.status_code == 200, reply.text
    assert reply.json()["stored"] == 3 and reply.json()["rejected"] == []
    events = httpx.get(
        f"{live_server.url}/api/v1/events", headers=bearer(tenant.secret_key)
    ).json()["items"]
    by_id = {e["message_id"]: e for e in events}
    assert by_id["nul-1"]["name"] == "Order Completed"
    assert by_id["nul-1"]["user_id"] == "bob"
    assert by_id["nul-1"]["properties"] == {"note": "ab", "nested": ["x"], "revenue": 5}
    assert by_id["nul-1"]["context"]["userAgent"] == "agent/1"
    assert by_id["nul-2"]["traits"] == {"name": "Cy"}


def test_nul_in_a_management_body_or_parameter_is_never_a_500(
    live_server: LiveServer, tenant: Tenant
) -> None:
    url = f"{live_server.url}/api/v1"
    reply = httpx.post(
        f"{url}/keys",
        json={"kind": "write", "name": "ci\u0000key"},
        headers=bearer(tenant.secret_key),
    )
    assert reply.status_code == 201, reply.text
    names = [k["name"] for k in httpx.get(f"{url}/keys", headers=bearer(tenant.secret_key)).json()]
    assert "cikey" in names
    reply = httpx.get(
        f"{url}/events", params={"name": "a\u0000b"}, headers=bearer(tenant.secret_key)
    )
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["loc"] == ["query", "name"]


@pytest.mark.parametrize("revenue", ["Infinity", "-1e309", "NaN", "-inf"])
def test_a_non_finite_revenue_refuses_that_message_only(
    live_server: LiveServer, tenant: Tenant, revenue: str
) -> None:
    batch = [
        {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "good",
         "properties": {"revenue": 12.5}},
        {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "bad",
         "properties": {"revenue": revenue}},
    ]  # fmt: skip
    reply = send_batch(live_server, tenant, {"batch": batch})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["stored"] == 1
    assert body["rejected"] == [
        {
            "index": 1,
            "messageId": "bad",
            "errors": [
                {"loc": ["properties", "revenue"], "message": "must be a finite number",
                 "type": "value_error"}
            ],
        }
    ]  # fmt: skip
    stats = httpx.get(
        f"{live_server.url}/api/v1/workspace/stats", headers=bearer(tenant.secret_key)
    ).json()
    assert stats["revenue"] == 12.5


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"-1e309", b"1e400"])
def test_non_json_numbers_refuse_the_body(
    live_server: LiveServer, tenant: Tenant, literal: bytes
) -> None:
    body = (
        b'{"batch": [{"type": "track", "userId": "ann", "event": "Order Completed", '
        b'"properties": {"revenue": ' + literal + b"}}]}"
    )
    reply = send_batch(live_server, tenant, body)
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["type"] == "json_invalid"
    # The management API parses bodies the same way (it used to store them and answer 500).
    reply = httpx.post(
        f"{live_server.url}/api/v1/engage/coupons/ANY-CODE/validate",
        content=b'{"order_total": ' + literal + b"}",
        headers={**bearer(tenant.secret_key), "Content-Type": "application/json"},
    )
    assert reply.status_code == 422


def test_readers_survive_non_finite_values_already_stored(
    live_server: LiveServer, tenant: Tenant
) -> None:
    """Rows written before the edge refused them: the log and the sums still answer."""
    batch = [
        {"type": "track", "userId": "ann", "event": "Order Completed", "messageId": f"o{n}",
         "properties": {"revenue": 10}}
        for n in range(3)
    ]  # fmt: skip
    assert send_batch(live_server, tenant, {"batch": batch}).status_code == 200
    with live_server.db.engine.begin() as conn:
        for message_id, value in (("o1", math.inf), ("o2", math.nan)):
            conn.execute(
                text("UPDATE events SET revenue = :v WHERE message_id = :m"),
                {"v": value, "m": message_id},
            )
    url, headers = f"{live_server.url}/api/v1", bearer(tenant.secret_key)
    events = httpx.get(f"{url}/events", headers=headers)
    assert events.status_code == 200, events.text
    assert sorted(e["revenue"] for e in events.json()["items"] if e["revenue"] is not None) == [
        10.0
    ]
    customer = events.json()["items"][0]["customer_id"]
    timeline = httpx.get(f"{url}/customers/{customer}/timeline", headers=headers)
    assert timeline.status_code == 200, timeline.text
    stats = httpx.get(f"{url}/workspace/stats", headers=headers)
    assert stats.status_code == 200, stats.text
    assert stats.json()["revenue"] == 10.0  # the finite amounts; the others are unknown


MANAGEMENT_GETS = [
    f"/api/v1/customers/{BIG}",
    f"/api/v1/customers?after={BIG}",
    f"/api/v1/customers/{BIG}/timeline",
    f"/api/v1/customers/{BIG}/lifecycle",
    f"/api/v1/customers/{BIG}/predictions",
    f"/api/v1/events?after={BIG}",
    f"/api/v1/events?customer_id={BIG}",
    f"/api/v1/engage/customers/{BIG}/journeys",
    f"/api/v1/engage/points/{BIG}",
    f"/api/v1/lifecycle/transitions?start=2020-01-01&end=2021-01-01&offset={BIG}",
    "/api/v1/engage/messages?limit=-1",
    "/api/v1/customers?limit=-1",
]
MANAGEMENT_WRITES = [
    ("DELETE", f"/api/v1/keys/{BIG}", None),
    ("PUT", "/api/v1/engage/consents",
     {"customer_id": BIG, "channel": "email", "purpose": "marketing", "granted": True}),
    ("POST", "/api/v1/engage/points/earn", {"customer_id": BIG, "points": 1, "txn_id": "t"}),
    ("POST", "/api/v1/engage/points/earn", {"customer_id": 1, "points": BIG, "txn_id": "t"}),
    ("POST", f"/api/v1/engage/referrals/{BIG}/review", {"approve": True}),
    ("POST", f"/api/v1/engage/testimonials/{BIG}/review", {"decision": "approved"}),
    ("POST", "/api/v1/engage/surveys/nps/send", {"customer_ids": [BIG]}),
    ("POST", "/api/v1/engage/messages",
     [{"customer_id": BIG, "channel": "email", "content": {"text": "hi"}}]),
]  # fmt: skip


def test_numbers_past_64_bits_are_a_422_naming_the_field(
    live_server: LiveServer, tenant: Tenant
) -> None:
    headers = bearer(tenant.secret_key)
    answers = {}
    for path in MANAGEMENT_GETS:
        answers[f"GET {path}"] = httpx.get(live_server.url + path, headers=headers)
    for method, path, body in MANAGEMENT_WRITES:
        answers[f"{method} {path} {body}"] = httpx.request(
            method, live_server.url + path, json=body, headers=headers
        )
    wrong = {k: (r.status_code, r.text[:200]) for k, r in answers.items() if r.status_code != 422}
    assert wrong == {}
    assert all(r.json()["errors"] for r in answers.values())  # field-level, not a bare 422


@pytest.mark.parametrize(
    "path", ["/public/surveys/answer-form", "/public/surveys/comment", "/public/testimonials/form"]
)
def test_a_form_that_is_not_utf8_is_refused(live_server: LiveServer, path: str) -> None:
    reply = httpx.post(
        live_server.url + path,
        content=b"token=abc&comment=caf\xe9",  # Latin-1, not UTF-8
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 422
    assert "UTF-8" in reply.text


def test_a_large_float_in_free_form_json_reads_back_on_both_databases(
    live_server: LiveServer, tenant: Tenant
) -> None:
    """PostgreSQL's jsonb hands ``1e25`` back as a 26-digit integer: stored configuration
    with one used to fail to render or to be stored again (found by schemathesis)."""
    url, headers = f"{live_server.url}/api/v1", bearer(tenant.secret_key)
    program = {"rules": [{"event": "Order Completed", "where": {"tier": 1e25}}]}
    for _ in range(2):  # the second write reads the first back (the audit log's "before")
        reply = httpx.put(f"{url}/engage/programs/points", json=program, headers=headers)
        assert reply.status_code == 200, reply.text
    audit = httpx.get(f"{url}/audit", headers=headers)
    assert audit.status_code == 200, audit.text
    assert audit.json()[0]["after"]["rules"][0]["where"] == {"tier": 1e25}


@pytest.mark.parametrize("as_upload", [False, True])
def test_a_spend_file_that_is_not_utf8_is_refused(
    live_server: LiveServer, tenant: Tenant, as_upload: bool
) -> None:
    csv = "date,channel,amount\n2024-01-01,caf\xe9,10\n".encode("latin-1")
    url, headers = f"{live_server.url}/api/v1/reports/spend", bearer(tenant.secret_key)
    if as_upload:
        reply = httpx.post(url, files={"file": ("spend.csv", csv, "text/csv")}, headers=headers)
    else:
        reply = httpx.post(url, content=csv, headers={**headers, "Content-Type": "text/csv"})
    assert reply.status_code == 422, reply.text
    assert reply.json()["errors"][0]["loc"] == ["body"]
    assert "UTF-8" in reply.json()["message"]
