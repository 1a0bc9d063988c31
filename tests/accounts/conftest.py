"""A workspace staffed with one person of every role and one key of every kind."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from clm.accounts import Role, operator, users
from clm.store import workspaces as ws
from clm.store.engine import Database
from tests.conftest import LiveServer

PASSWORD = "correct horse battery staple"


@dataclass
class Caller:
    """How one principal calls: its headers (Basic key, or session cookie + CSRF token)."""

    name: str
    headers: dict[str, str] = field(default_factory=dict)
    csrf: str = ""


@dataclass
class Staff:
    workspace_id: int
    client: httpx.Client
    callers: dict[str, Caller]
    keys: dict[str, str]


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD) -> Caller:
    """Sign in and return the session's headers, keeping the client's own jar empty."""
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = response.cookies["clm_session"]
    csrf = response.json()["csrf_token"]
    assert response.cookies["clm_csrf"] == csrf
    client.cookies.clear()
    return Caller(email, {"Cookie": f"clm_session={token}", "X-CSRF-Token": csrf}, csrf)


def add_user(db: Database, email: str, workspace_id: int, role: Role) -> None:
    with db.transaction() as session:
        user = users.create_user(session, operator("test"), email, PASSWORD)
        users.set_role(session, operator("test", workspace_id), user, workspace_id, role)


@pytest.fixture
def staff(db: Database, live_server: LiveServer) -> Iterator[Staff]:
    """The real app under uvicorn on loopback, with every role signed in."""
    with db.transaction() as session:
        workspace = ws.create_workspace(session, "shop")
        keys = {
            kind: ws.issue_key(session, kind, workspace.id).key  # type: ignore[arg-type]
            for kind in ("write", "read", "manage", "secret")
        }
        keys["admin"] = ws.issue_key(session, "admin").key
        workspace_id = workspace.id
    for role in Role:
        add_user(db, f"{role}@example.com", workspace_id, role)
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        callers = {role.value: sign_in(client, f"{role}@example.com") for role in Role}
        for kind, key in keys.items():
            name = "admin_key" if kind == "admin" else f"{kind}_key"
            callers[name] = Caller(name, basic(key))
        callers["anonymous"] = Caller("anonymous")
        yield Staff(workspace_id, client, callers, keys)
