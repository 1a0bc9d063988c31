"""Creating a survey over real HTTP on SQLite and PostgreSQL, as the browser's form does: the
ladder (no key, a read key, a marketing key), each bad field named in the 422, a key in use
refused with ``create_only`` (and replaced without it, as ``clm engage survey apply`` does),
and the answer link every customer's signed link starts with."""

from __future__ import annotations

import httpx

from clm.config import get_settings
from clm.store import workspaces as ws
from tests.conftest import LiveServer, make_tenant


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_create_a_survey_with_field_errors_and_no_silent_replace(live_server: LiveServer) -> None:
    tenant = make_tenant(live_server.db, "surveys")
    with live_server.db.transaction() as session:
        reader = ws.issue_key(session, "read", tenant.id).key
    mine = _bearer(tenant.secret_key)
    url = f"{live_server.url}/api/v1/engage/surveys"
    body = {"key": "nps-q1", "type": "nps", "question": "Would you recommend Acme?",
            "channel": "sms"}  # fmt: skip
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers=_bearer(reader)).status_code == 403
    made = httpx.post(url, params={"create_only": "true"}, json=body, headers=mine)
    assert made.status_code == 201, made.text
    survey = made.json()
    assert survey["key"] == "nps-q1" and survey["type"] == "nps" and survey["active"] is True
    assert survey["definition"]["question"] == "Would you recommend Acme?"
    assert survey["definition"]["channel"] == "sms"
    public = get_settings().public_url.rstrip("/")
    assert survey["answer_link"] == f"{public}/public/surveys/answer"
    # The same key again: refused when creating, replaced when applying.
    again = httpx.post(url, params={"create_only": "true"}, json={**body, "question": "Hm?"},
                       headers=mine)  # fmt: skip
    assert again.status_code == 409 and "nps-q1" in again.json()["message"]
    listed = httpx.get(url, headers=_bearer(reader)).json()
    assert [s["definition"]["question"] for s in listed] == ["Would you recommend Acme?"]
    replaced = httpx.post(url, json={**body, "question": "Hm?"}, headers=mine)
    assert replaced.status_code == 201
    assert httpx.get(url, headers=mine).json()[0]["definition"]["question"] == "Hm?"
    # Every bad field named, all at once.
    bad = {"key": "Bad Key!", "type": "stars", "question": "x" * 1_001, "channel": "pigeon",
           "subject": ""}  # fmt: skip
    refused = httpx.post(url, params={"create_only": "true"}, json=bad, headers=mine)
    assert refused.status_code == 422
    assert sorted(e["loc"][1] for e in refused.json()["errors"]) == sorted(
        ["key", "type", "question", "channel", "subject"]
    )
    assert all(e["loc"][0] == "body" for e in refused.json()["errors"])
    assert len(httpx.get(url, headers=mine).json()) == 1  # nothing stored
