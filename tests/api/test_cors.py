"""CORS on the tracking API: no origin is allowed by default; allowed origins are per
workspace; a preflight is answered; a disallowed page's event is refused and not stored."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from clm.privacy.settings import PrivacySettings, set_privacy_settings
from clm.store.models import Event
from tests.conftest import LiveServer, make_tenant

SHOP = "http://127.0.0.1:4100"
PREFLIGHT = {"Origin": SHOP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip


def _count(live_server: LiveServer) -> int:
    with live_server.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


def test_no_origin_is_allowed_by_default(live_server: LiveServer) -> None:
    tenant = make_tenant(live_server.db)
    with httpx.Client(base_url=live_server.url) as http:
        preflight = http.options("/v1/batch", headers=PREFLIGHT)
        assert preflight.status_code == 403
        assert "access-control-allow-origin" not in preflight.headers
        sent = http.post("/v1/track", auth=(tenant.write_key, ""), headers={"Origin": SHOP},
                         json={"userId": "u1", "event": "Signed Up"})  # fmt: skip
        assert sent.status_code == 403 and "Origin" in sent.json()["message"]
        assert "access-control-allow-origin" not in sent.headers
        assert _count(live_server) == 0
        # Servers and SDKs outside browsers send no Origin: unaffected.
        plain = http.post("/v1/track", auth=(tenant.write_key, ""),
                          json={"userId": "u1", "event": "Signed Up"})  # fmt: skip
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
        assert _count(live_server) == 1


def test_allowed_origins_are_per_workspace(live_server: LiveServer) -> None:
    shop, other = make_tenant(live_server.db), make_tenant(live_server.db, "other")
    with live_server.db.transaction() as session:
        set_privacy_settings(session, shop.id, PrivacySettings(cors_origins=[SHOP]))
    with httpx.Client(base_url=live_server.url) as http:
        preflight = http.options("/v1/batch", headers=PREFLIGHT)
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == SHOP
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed = {h.strip().lower() for h in
                   preflight.headers["access-control-allow-headers"].split(",")}  # fmt: skip
        assert {"authorization", "content-type"} <= allowed
        assert "access-control-allow-credentials" not in preflight.headers
        # analytics.js posts text/plain JSON to the one-letter paths with the key in Basic auth.
        body = '{"userId": "u1", "event": "Signed Up", "type": "track"}'
        headers = {"Origin": SHOP, "Content-Type": "text/plain"}
        sent = http.post("/v1/t", auth=(shop.write_key, ""), headers=headers, content=body)
        assert sent.status_code == 200, sent.text
        assert sent.headers["access-control-allow-origin"] == SHOP
        assert "Origin" in sent.headers["vary"]
        # Invalid input from an allowed page: the page can read the field-level error.
        bad = http.post("/v1/t", auth=(shop.write_key, ""), headers=headers, content="{}")
        assert bad.status_code == 422 and bad.headers["access-control-allow-origin"] == SHOP
        # The same page with another workspace's key: that workspace allows no origin.
        refused = http.post("/v1/t", auth=(other.write_key, ""), headers=headers, content=body)
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        # Another origin, even for the shop's key.
        evil = http.post("/v1/t", auth=(shop.write_key, ""), content=body,
                         headers={**headers, "Origin": "http://127.0.0.1:4101"})  # fmt: skip
        assert evil.status_code == 403
    assert _count(live_server) == 1


def test_a_page_of_clm_itself_needs_no_allowance(live_server: LiveServer) -> None:
    tenant = make_tenant(live_server.db)
    with httpx.Client(base_url=live_server.url) as http:
        sent = http.post("/v1/track", auth=(tenant.write_key, ""),
                         headers={"Origin": live_server.url},
                         json={"userId": "u1", "event": "Signed Up"})  # fmt: skip
    assert sent.status_code == 200
    assert _count(live_server) == 1
