"""The audit log: who changed what, when, before and after; readable in the API and CLI;
append-only on SQLite and PostgreSQL (the database itself refuses UPDATE and DELETE)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from clm.accounts import operator, record
from clm.store.engine import Database
from tests.accounts.conftest import Staff


def _audit(staff: Staff, caller: str = "admin", **params: str) -> list[dict]:  # type: ignore[type-arg]
    response = staff.client.get(
        "/api/v1/audit", headers=staff.callers[caller].headers, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_changes_are_recorded_with_who_before_and_after(staff: Staff) -> None:
    client, callers = staff.client, staff.callers
    # An admin tightens the policy (a signed-in person).
    policy = client.get("/api/v1/engage/policy", headers=callers["admin"].headers).json()
    changed = {**policy, "marketing_requires_opt_in": not policy["marketing_requires_opt_in"]}
    put = client.put("/api/v1/engage/policy", headers=callers["admin"].headers, json=changed)
    assert put.status_code == 200, put.text
    # A marketer saves a survey, then changes its subject.
    survey = {"key": "nps", "type": "nps", "subject": "First"}
    for subject in ("First", "Second"):
        saved = client.post(
            "/api/v1/engage/surveys",
            headers=callers["marketer"].headers,
            json={**survey, "subject": subject},
        )
        assert saved.status_code == 201, saved.text
    # An owner changes the stage model (same YAML, a new version).
    model = client.get("/api/v1/lifecycle/model", headers=callers["owner"].headers).json()
    put_model = client.put(
        "/api/v1/lifecycle/model", headers=callers["owner"].headers, json={"yaml": model["yaml"]}
    )
    assert put_model.status_code == 200, put_model.text
    # A machine (manage key) issues a key and revokes it.
    issued = client.post(
        "/api/v1/keys", headers=callers["manage_key"].headers, json={"kind": "read", "name": "bi"}
    ).json()
    gone = client.delete(f"/api/v1/keys/{issued['id']}", headers=callers["manage_key"].headers)
    assert gone.status_code == 204
    # An owner makes someone a viewer.
    member = client.put(
        "/api/v1/members",
        headers=callers["owner"].headers,
        json={"email": "new@example.com", "role": "viewer"},
    )
    assert member.status_code == 200, member.text

    records = _audit(staff)
    by_action = {}
    for row in reversed(records):  # oldest first, so later records of an action win
        by_action.setdefault(row["action"], []).append(row)

    (policy_row,) = by_action["policy.update"]
    assert policy_row["actor"] == "user:admin@example.com"
    assert policy_row["actor_user_id"] is not None and policy_row["actor_key_id"] is None
    assert policy_row["before"]["marketing_requires_opt_in"] == policy["marketing_requires_opt_in"]
    assert policy_row["after"]["marketing_requires_opt_in"] == changed["marketing_requires_opt_in"]

    first, second = by_action["survey.save"]
    assert first["actor"] == second["actor"] == "user:marketer@example.com"
    assert first["before"] is None and first["after"]["subject"] == "First"
    assert second["before"]["subject"] == "First" and second["after"]["subject"] == "Second"

    (model_row,) = by_action["stage_model.update"]
    assert model_row["actor"] == "user:owner@example.com"
    assert model_row["after"]["version"] == model_row["before"]["version"] + 1
    assert model_row["after"]["yaml"] == model["yaml"]

    (created,) = by_action["key.create"]
    (revoked,) = by_action["key.revoke"]
    assert created["actor"] == revoked["actor"] and created["actor"].startswith("key:")
    assert created["actor_key_id"] is not None and created["actor_user_id"] is None
    assert created["target"] == revoked["target"] == f"key:{issued['id']}"
    assert created["after"]["kind"] == "read" and issued["key"] not in json.dumps(records)

    (role_row,) = by_action["member.role"][-1:]
    assert role_row["after"] == {"email": "new@example.com", "role": "viewer"}
    assert role_row["before"] is None

    # Newest first, and ids strictly decreasing; paging with before_id continues the list.
    ids = [r["id"] for r in records]
    assert ids == sorted(ids, reverse=True)
    older = _audit(staff, before_id=str(ids[1]))
    assert [r["id"] for r in older] == ids[2:]
    assert {r["action"] for r in _audit(staff, action="key.")} == {"key.create", "key.revoke"}


def test_secrets_stay_out_of_the_log(staff: Staff) -> None:
    email = {"host": "127.0.0.1", "port": 2525, "username": "u", "password": "hunter2-secret"}
    put = staff.client.put(
        "/api/v1/engage/channels/email", headers=staff.callers["admin"].headers, json=email
    )
    assert put.status_code == 200, put.text
    (row,) = _audit(staff, action="channel.")
    assert row["after"]["host"] == "127.0.0.1"
    assert "hunter2-secret" not in json.dumps(row)


def test_the_log_refuses_update_and_delete_in_the_database(db: Database) -> None:
    with db.transaction() as session:
        record(session, operator("test", 1), "test.append", "x", after={"n": 1})
    for statement in ("UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.transaction() as session:
            session.execute(text(statement))
    with db.session() as session:
        assert session.execute(text("SELECT action FROM audit_log")).scalars().all() == [
            "test.append"
        ]


def test_clm_audit_list_prints_the_records(db: Database, staff: Staff) -> None:
    staff.client.put(
        "/api/v1/members",
        headers=staff.callers["owner"].headers,
        json={"email": "cli@example.com", "role": "marketer"},
    )
    url = db.engine.url.render_as_string(hide_password=False)
    # A real process, as an operator runs it (and it closes its own connections).
    result = subprocess.run(
        [sys.executable, "-m", "clm", "audit", "list", "-w", "shop", "--format", "json",
         "--database-url", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    latest = rows[0]
    assert (latest["action"], latest["actor"]) == ("member.role", "user:owner@example.com")
    assert latest["after"] == {"email": "cli@example.com", "role": "marketer"}
