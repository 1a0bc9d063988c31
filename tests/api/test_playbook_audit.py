"""Every save of a playbook's YAML that changes what is stored is in the audit log: a new
version (definition before and after, as before) and a save that changes only comments or
layout (the same version, a new text). That second kind was stored without a record, so the
log could not say who rewrote a playbook's text. Saving the same text again records nothing,
as an unchanged definition never did."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LiveServer, make_tenant
from tests.engage.test_console import BROKEN

TEXT = BROKEN.replace("dayz", "days")


def saves(http: httpx.Client) -> list[dict[str, Any]]:
    """The playbook.save records, oldest first."""
    found = http.get("/api/v1/audit", params={"action": "playbook.save"})
    assert found.status_code == 200, found.text
    return list(reversed(found.json()))


def test_a_comments_only_save_is_audited(live_server: LiveServer) -> None:
    tenant = make_tenant(live_server.db)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:

        def save(text: str) -> int:
            saved = http.post("/api/v1/engage/playbooks/source", json={"yaml": text})
            assert saved.status_code == 201, saved.text
            return int(saved.json()["version"])

        assert save(TEXT) == 1
        [created] = saves(http)
        assert created["target"] == "playbook:check-in" and created["before"] is None

        commented = "# Owner: the success team. Ask Dana before changing the wait.\n" + TEXT
        assert save(commented) == 1  # the same definition: no new version ...
        first, texts = saves(http)
        assert first == created  # ... but a record of the new text
        assert texts["target"] == "playbook:check-in"
        assert texts["before"] == {"version": 1, "source": TEXT}
        assert texts["after"] == {"version": 1, "source": commented}
        source = http.get("/api/v1/engage/playbooks/check-in/source").json()
        assert source["yaml"] == commented

        assert save(commented) == 1  # the same text again: nothing changed, nothing recorded
        assert len(saves(http)) == 2
        # A changed definition is a new version, recorded with both definitions, as before.
        assert save(commented.replace("days: 3", "days: 5")) == 2
        versioned = saves(http)[-1]
        assert versioned["before"]["steps"][1]["days"] == 3
        assert versioned["after"]["steps"][1]["days"] == 5
