"""``GET /api/v1/engage/channels``: what is configured, every secret only as "set", on both
databases through a real server; and a misspelt quiet-hours time zone is a field error."""

from __future__ import annotations

import httpx

from clm.engage import repository as repo
from clm.store import workspaces as ws
from clm.store.models import AuditRecord
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


def _stored(live_server: LiveServer, tenant: Tenant, channel: str) -> dict[str, object]:
    """The provider as the database holds it, secrets in clear (what a send would use)."""
    with live_server.db.session() as session:
        return repo.secret_dump(repo.get_provider(session, tenant.id, channel))


def test_an_edit_keeps_the_secrets_it_leaves_out_and_replaces_the_ones_it_gives(
    live_server: LiveServer, tenant: Tenant
) -> None:
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    with live_server.db.transaction() as session:
        reader = {"Authorization": f"Bearer {ws.issue_key(session, 'read', tenant.id).key}"}
    with httpx.Client(base_url=live_server.url + "/api/v1/engage", headers=headers) as api:
        email = {"host": "smtp.example.com", "port": 587, "username": "mailer",
                 "password": "hunter2-smtp", "sender": "Shop <hi@example.com>"}  # fmt: skip
        assert api.put("/channels/email", json=email).status_code == 200
        assert api.patch("/channels/email", json={"port": 2525}, headers=reader).status_code == 403
        # One field changed, the password left out: kept as it was.
        kept = api.patch("/channels/email", json={"port": 2525, "starttls": True})
        assert kept.status_code == 200, kept.text
        assert (kept.json()["port"], kept.json()["password"]) == (2525, "set")
        assert "hunter2" not in kept.text
        stored = _stored(live_server, tenant, "email")
        assert (stored["port"], stored["starttls"], stored["password"]) == (
            2525,
            True,
            "hunter2-smtp",
        )
        assert stored["host"] == "smtp.example.com" and stored["username"] == "mailer"
        # The secret given: replaced; null: cleared (the password is optional).
        assert api.patch("/channels/email", json={"password": "n3w-smtp"}).status_code == 200
        assert _stored(live_server, tenant, "email")["password"] == "n3w-smtp"
        cleared = api.patch("/channels/email", json={"password": None})
        assert cleared.status_code == 200 and cleared.json()["password"] is None
        assert _stored(live_server, tenant, "email")["password"] is None
        # Bad fields: each named; nothing stored.
        bad = api.patch("/channels/email", json={"port": 70_000, "colour": "red"})
        assert bad.status_code == 422
        assert sorted(e["loc"] for e in bad.json()["errors"]) == [
            ["body", "colour"],
            ["body", "port"],
        ]
        assert _stored(live_server, tenant, "email")["port"] == 2525
        assert api.patch("/channels/pigeon", json={}).status_code == 422
        # A channel not configured yet: the edit must hold the whole of it.
        lacking = api.patch("/channels/webhook", json={"url": "https://1.1.1.1/clm"})
        assert lacking.status_code == 422
        assert [e["loc"] for e in lacking.json()["errors"]] == [["body", "secret"]]
        sms = {"base_url": "https://1.1.1.1", "account_sid": "AC1", "auth_token": "hunter2-sms",
               "sender": "+15550001"}  # fmt: skip
        assert api.patch("/channels/sms", json=sms).status_code == 200
        assert api.patch("/channels/sms", json={"sender": "+15550002"}).status_code == 200
        stored = _stored(live_server, tenant, "sms")
        assert (stored["sender"], stored["auth_token"]) == ("+15550002", "hunter2-sms")
        # A PUT still replaces the whole: the password it leaves out is gone.
        assert api.put("/channels/email", json={**email, "password": None}).status_code == 200
        assert _stored(live_server, tenant, "email")["password"] is None
    with live_server.db.session() as session:
        audited = [
            (r.action, str(r.after))
            for r in session.query(AuditRecord).filter(AuditRecord.workspace_id == tenant.id)
        ]
    # Stored 7 times: 2 PUTs, 5 PATCHes that passed; the refused ones left no record.
    assert [a for a, _ in audited].count("channel.update") == 7
    assert not any("hunter2" in after or "n3w" in after for _, after in audited)
