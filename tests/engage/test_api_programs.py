"""API and public endpoints for referrals, points, coupons and testimonials (live server)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import httpx

from clm.engage.referrals import testimonials
from tests.conftest import LiveServer, make_tenant
from tests.engage.conftest import add_customer


def test_referral_landing_coupons_points_and_testimonial_feed(live_server: LiveServer) -> None:
    db = live_server.db
    shop, other = make_tenant(db, "shop"), make_tenant(db, "other")
    ada = add_customer(db, shop.id, "ada")
    auth = {"Authorization": f"Bearer {shop.secret_key}"}
    stranger = {"Authorization": f"Bearer {other.secret_key}"}
    with httpx.Client(base_url=live_server.url, follow_redirects=False) as client:
        assert client.get("/api/v1/engage/referrals").status_code == 401
        program = {"landing_url": "https://shop.test/join", "min_amount": 10}
        assert (
            client.put("/api/v1/engage/referrals/program", json=program, headers=auth).status_code
            == 200
        )
        [code] = client.post("/api/v1/engage/referrals/codes", json=[], headers=auth).json()
        assert code["customer_id"] == ada
        landing = client.get(f"/public/r/{code['code']}")
        assert landing.status_code == 302
        target = urlparse(landing.headers["location"])
        query = parse_qs(target.query)
        assert (target.netloc, query["ref"]) == ("shop.test", [code["code"]])
        assert landing.cookies["clm_anonymous_id"] == query["anonymous_id"][0]
        assert client.get("/public/r/UNKNOWN9").status_code == 404

        coupon = {"code": "TEN-OFF", "kind": "amount", "value": 10}
        assert client.post("/api/v1/engage/coupons", json=coupon, headers=auth).status_code == 200
        order = {"order_total": 25.0, "order_id": "o1"}
        url = "/api/v1/engage/coupons/TEN-OFF"
        assert client.post(f"{url}/validate", json=order, headers=stranger).json()["valid"] is False
        assert client.post(f"{url}/validate", json=order, headers=auth).json()["discount"] == 10.0
        assert client.post(f"{url}/redeem", json=order, headers=auth).json()["valid"] is True
        again = {"order_total": 25.0, "order_id": "o2"}
        refused = client.post(f"{url}/redeem", json=again, headers=auth)
        assert (refused.status_code, refused.json()["code"]) == (409, "coupon_used_up")
        unknown = client.post("/api/v1/engage/coupons/NOPE-0000/redeem", json=again, headers=auth)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "coupon_unknown")
        check = client.post(f"{url}/validate", json=again, headers=auth).json()
        assert (check["valid"], check["reason_code"]) == (False, "used_up")

        earn = {"customer_id": ada, "points": 50, "txn_id": "welcome"}
        assert client.post("/api/v1/engage/points/earn", json=earn, headers=auth).json() == {
            "balance": 50
        }
        too_much = {"customer_id": ada, "points": 80, "txn_id": "r1"}
        assert (
            client.post("/api/v1/engage/points/redeem", json=too_much, headers=auth).status_code
            == 409
        )

        with db.transaction() as session:
            [form] = testimonials.form_links(session, shop.id, [ada], _now()).values()
        token = parse_qs(urlparse(form).query)["token"][0]
        assert "textarea" in client.get(f"/public/testimonials/form?token={token}").text
        posted = client.post(
            "/public/testimonials/form",
            data={"token": token, "text": "<img src=x onerror=alert(1)>", "consent": "on"},
        )
        assert posted.status_code == 200
        [pending] = client.get("/api/v1/engage/testimonials", headers=auth).json()
        assert (
            client.post(
                f"/api/v1/engage/testimonials/{pending['id']}/review",
                json={"decision": "approved"},
                headers=stranger,
            ).status_code
            == 404
        )
        client.post(
            f"/api/v1/engage/testimonials/{pending['id']}/review",
            json={"decision": "approved"},
            headers=auth,
        )
        feed = client.get("/api/v1/engage/testimonials/feed-token", headers=auth).json()["token"]
        assert client.get(f"/public/testimonials/feed?token={feed}").json()[0]["text"] == (
            "<img src=x onerror=alert(1)>"
        )
        embed = client.get(f"/public/testimonials/embed?token={feed}").text
        assert "&lt;img src=x onerror=alert(1)&gt;" in embed and "<img" not in embed
        assert client.get("/public/testimonials/feed?token=forged").status_code == 401


def _now() -> datetime:
    return datetime.now(UTC)


def test_points_rules_over_http_earn_on_the_next_tick(live_server: LiveServer) -> None:
    from clm.ingest import ingest

    db = live_server.db
    shop = make_tenant(db, "shop")
    ann = add_customer(db, shop.id, "ann")
    auth = {"Authorization": f"Bearer {shop.secret_key}"}
    rules = {"rules": [{"event": "Order Completed", "points_per_unit": 1.5}]}
    with httpx.Client(base_url=live_server.url) as client:
        assert client.put("/api/v1/engage/programs/points", json=rules).status_code == 401
        bad = client.put("/api/v1/engage/programs/points", json={"rules": [{"bonus": -1}]},
                         headers=auth)  # fmt: skip
        assert bad.status_code == 422
        saved = client.put("/api/v1/engage/programs/points", json=rules, headers=auth)
        assert saved.status_code == 200 and saved.json()["rules"][0]["points_per_unit"] == 1.5
        when = datetime.now(UTC).isoformat()
        ingest(db, shop.id, [{"type": "track", "event": "Order Completed", "userId": "ann",
                              "messageId": "o-1", "timestamp": when,
                              "properties": {"revenue": 20.0}}])  # fmt: skip
        tick = client.post("/api/v1/engage/tick", headers=auth).json()
        assert (tick["points_earned"], tick["referrals"]) == (30, None)
        entries = client.get(f"/api/v1/engage/points/{ann}", headers=auth).json()
        assert [(e["kind"], e["amount"]) for e in entries] == [("earn", 30)]
