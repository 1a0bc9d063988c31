"""``GET /api/v1/engage/channels``: what is configured, every secret only as "set", on both
databases through a real server; and a misspelt quiet-hours time zone is a field error."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer, Tenant


def test_channels_are_shown_with_their_secrets_as_set(
    live_server: LiveServer, tenant: Tenant
) -> None:
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url + "/api/v1/engage", headers=headers) as api:
        assert api.get("/channels").json() == {"email": None, "sms": None, "webhook": None}
        email = {"host": "smtp.example.com", "port": 587, "username": "mailer",
                 "password": "hunter2-smtp", "sender": "Shop <hi@example.com>"}  # fmt: skip
        assert api.put("/channels/email", json=email).status_code == 200
        hook = {"url": "https://1.1.1.1/clm", "secret": "hunter2-hook"}
        assert api.put("/channels/webhook", json=hook).status_code == 200
        answer = api.get("/channels")
        assert answer.status_code == 200
        assert "hunter2" not in answer.text and "*****" not in answer.text
        shown = answer.json()
        assert shown["sms"] is None
        assert {k: shown["email"][k] for k in ("host", "port", "username", "password")} == {
            "host": "smtp.example.com", "port": 587, "username": "mailer", "password": "set",
        }  # fmt: skip
        assert (shown["webhook"]["url"], shown["webhook"]["secret"]) == (hook["url"], "set")
        bad = api.put("/policy", json={"quiet_hours": {"default_timezone": "Mars/Olympus"}})
        assert bad.status_code == 422
        [error] = bad.json()["errors"]
        assert error["loc"] == ["body", "quiet_hours", "default_timezone"]
        assert "unknown time zone 'Mars/Olympus'" in error["message"]
        good = {"quiet_hours": {"start": "22:00", "end": "07:30", "default_timezone": "Asia/Tokyo"}}
        assert api.put("/policy", json=good).status_code == 200
        assert api.get("/policy").json()["quiet_hours"]["default_timezone"] == "Asia/Tokyo"
