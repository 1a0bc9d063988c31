"""Frontline notes through the real HTTP API and the CLI: the ladder (no key, another
workspace, bad input field by field, success), the timeline, and the health factor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from clm.cli import app
from clm.ingest import ingest
from clm.lifecycle.catalog import save_definition
from clm.lifecycle.health_service import health_now
from clm.store.engine import Database
from clm.store.workspaces import create_workspace
from tests.conftest import LiveServer, Tenant, make_tenant

CARD = """\
name: notes
factors:
  frontline: {feature: frontline_rating, axis: sentiment, weight: 50, best: 5, worst: 1,
              decay_days: 90, decay_from: last_frontline_rating_at}
  frequency: {feature: purchases_365d, axis: risk, weight: 50, best: 1, worst: 0}
"""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _buyer(db: Database, workspace_id: int, user: str = "u1") -> None:
    now = datetime.now(UTC) - timedelta(days=1)
    ingest(
        db,
        workspace_id,
        [
            {
                "type": "track",
                "userId": user,
                "event": "Order Completed",
                "messageId": f"{user}-o1",
                "properties": {"revenue": 10},
                "timestamp": now.isoformat(),
            }
        ],
    )


def test_notes_walk_the_ladder_and_feed_health(live_server: LiveServer, tenant: Tenant) -> None:
    db = live_server.db
    _buyer(db, tenant.id)
    save_definition(db, tenant.id, "health", CARD)
    other = make_tenant(db, "other")
    url = f"{live_server.url}/api/v1/customers/1/notes"
    note = {"text": "Angry about the late delivery", "rating": 1, "author": "ann@shop.test"}
    assert httpx.post(url, json=note).status_code == 401
    # another workspace's key: that workspace has no customer 1 -> 404, nothing written
    assert httpx.post(url, json=note, headers=bearer(other.secret_key)).status_code == 404
    assert httpx.get(url, headers=bearer(other.secret_key)).status_code == 404
    # a write key may send events, not notes
    assert httpx.post(url, json=note, headers=bearer(tenant.write_key)).status_code == 403
    # bad input: every field named at once
    bad = httpx.post(
        url,
        json={"text": " ", "rating": 7, "author": "", "mood": "x"},
        headers=bearer(tenant.secret_key),
    )
    assert bad.status_code == 422
    fields = {tuple(e["loc"][-1:]) for e in bad.json()["errors"]}
    assert {("text",), ("rating",), ("author",), ("mood",)} <= fields
    future = {**note, "at": (datetime.now(UTC) + timedelta(days=2)).isoformat()}
    response = httpx.post(url, json=future, headers=bearer(tenant.secret_key))
    assert response.status_code == 422 and response.json()["errors"][0]["loc"][-1] == "at"
    assert httpx.get(url, headers=bearer(tenant.secret_key)).json() == []
    # success
    created = httpx.post(url, json=note, headers=bearer(tenant.secret_key))
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["customer_id"], body["rating"], body["author"]) == (1, 1, "ann@shop.test")
    listed = httpx.get(url, headers=bearer(tenant.secret_key)).json()
    assert [n["id"] for n in listed] == [body["id"]]
    # on the timeline, on CLM's own channel (never a touchpoint)
    timeline = httpx.get(
        f"{live_server.url}/api/v1/customers/1/timeline", headers=bearer(tenant.secret_key)
    ).json()
    [event] = [e for e in timeline if e["name"] == "Frontline Note"]
    assert event["channel"] == "system"
    assert event["properties"]["text"] == note["text"]
    # health: the fresh rating 1 earns 0 of 50; one purchase earns 50 -> 50, unhappy
    now = health_now(db, tenant.id, 1)
    assert now is not None and now.state == "unhappy"
    assert now.score == pytest.approx(50.0, abs=0.1)
    frontline = next(f for f in now.factors if f.factor == "frontline")
    assert frontline.value == 1.0 and frontline.weight == pytest.approx(50.0, abs=0.1)
    # 90 days later the rating weighs half: 100 x 50 / 75 = 66.67
    later = health_now(db, tenant.id, 1, datetime.now(UTC) + timedelta(days=90))
    assert later is not None and later.score == pytest.approx(200 / 3, abs=0.1)


def test_a_client_cannot_forge_a_note(live_server: LiveServer, tenant: Tenant) -> None:
    """A Frontline Note sent through /v1 on the system channel is refused; one on another
    channel is a client event and not listed as a note."""
    _buyer(live_server.db, tenant.id)
    forged = {
        "type": "track",
        "userId": "u1",
        "event": "Frontline Note",
        "messageId": "forged",
        "properties": {"rating": 5, "text": "love it", "author": "me", "channel": "system"},
    }
    response = httpx.post(f"{live_server.url}/v1/track", json=forged, auth=(tenant.write_key, ""))
    assert response.status_code in (400, 422)
    forged["properties"]["channel"] = "web"  # type: ignore[index]
    forged["messageId"] = "forged-2"
    assert (
        httpx.post(
            f"{live_server.url}/v1/track", json=forged, auth=(tenant.write_key, "")
        ).status_code
        == 200
    )
    notes = httpx.get(
        f"{live_server.url}/api/v1/customers/1/notes", headers=bearer(tenant.secret_key)
    ).json()
    assert notes == []


def test_cli_adds_and_lists_notes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clm.sqlite'}"
    db = Database.open(url)
    with db.transaction() as session:
        workspace_id = create_workspace(session, "shop").id
    _buyer(db, workspace_id)
    runner = CliRunner()
    base = ["--workspace", "shop", "--database-url", url]
    result = runner.invoke(
        app, ["customer", "note", "add", "1", "Happy with support", "--rating", "5",
              "--author", "bob", *base],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "rated 5/5" in " ".join(result.output.split())
    bad = runner.invoke(
        app, ["customer", "note", "add", "1", "x", "--rating", "9", "--author", "bob", *base]
    )
    assert bad.exit_code == 1 and "rating" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(app, ["customer", "note", "add", "99", "x", "--author", "b", *base])
    assert missing.exit_code == 1 and "No customer 99" in missing.output
    listed = runner.invoke(app, ["customer", "note", "list", "1", *base, "--format", "json"])
    assert [n["text"] for n in json.loads(listed.output)] == ["Happy with support"]
