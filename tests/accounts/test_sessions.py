"""Sign-in over the real app and database: cookies, CSRF, sign-out, disabling, lockout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from clm.accounts import Role, operator, users
from clm.config import get_settings
from clm.store.engine import Database
from clm.store.models import LoginFailure
from tests.accounts.conftest import PASSWORD, Staff, add_user, sign_in
from tests.conftest import LiveServer


def _set_cookie(response: httpx.Response, name: str) -> str:
    headers = [v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers
    return headers[0].lower()


def test_session_cookie_is_httponly_lax_and_secure_only_over_https(
    staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = {"email": "viewer@example.com", "password": PASSWORD}
    response = staff.client.post("/api/v1/auth/login", json=login)
    session_cookie = _set_cookie(response, "clm_session")
    assert "httponly" in session_cookie and "samesite=lax" in session_cookie
    assert "path=/" in session_cookie
    assert "secure" not in session_cookie  # plain http on loopback
    csrf_cookie = _set_cookie(response, "clm_csrf")
    assert "httponly" not in csrf_cookie  # the page reads it
    assert "samesite=strict" in csrf_cookie

    monkeypatch.setenv("CLM_COOKIE_SECURE", "always")  # as behind an HTTPS proxy
    get_settings.cache_clear()
    try:
        response = staff.client.post("/api/v1/auth/login", json=login)
    finally:
        get_settings.cache_clear()
    assert "; secure" in _set_cookie(response, "clm_session")
    staff.client.cookies.clear()


def test_the_session_says_who_and_where(staff: Staff) -> None:
    response = staff.client.get("/api/v1/auth/session", headers=staff.callers["marketer"].headers)
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "marketer@example.com"
    assert body["role"] == "marketer"
    assert body["workspace_id"] == staff.workspace_id
    assert body["workspaces"] == [{"id": staff.workspace_id, "slug": "shop", "role": "marketer"}]


def test_wrong_password_and_unknown_email_get_the_same_answer(staff: Staff) -> None:
    wrong = staff.client.post(
        "/api/v1/auth/login", json={"email": "owner@example.com", "password": "nope-nope-nope"}
    )
    unknown = staff.client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]
    assert "clm_session" not in wrong.cookies


# --- CSRF -----------------------------------------------------------------------------------

VALIDATE = "/api/v1/engage/playbooks/validate"  # a marketer's POST that changes nothing


def test_cookie_posts_need_the_csrf_token(staff: Staff) -> None:
    caller = staff.callers["marketer"]
    cookie = {"Cookie": caller.headers["Cookie"]}
    missing = staff.client.post(VALIDATE, headers=cookie, json={})
    assert missing.status_code == 403 and missing.json()["code"] == "csrf_failed"
    wrong = staff.client.post(VALIDATE, headers={**cookie, "X-CSRF-Token": "x" * 43}, json={})
    assert wrong.status_code == 403 and wrong.json()["code"] == "csrf_failed"
    right = staff.client.post(VALIDATE, headers=caller.headers, json={})
    assert right.status_code == 422  # past authorization, refused for its (empty) body
    # Reads need no token: a cross-site page cannot read the answer anyway.
    assert staff.client.get("/api/v1/engage/playbooks", headers=cookie).status_code == 200


def test_cookie_posts_from_another_origin_are_refused_even_with_the_token(staff: Staff) -> None:
    headers = {**staff.callers["marketer"].headers, "Origin": "https://evil.example"}
    response = staff.client.post(VALIDATE, headers=headers, json={})
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"
    same = {**staff.callers["marketer"].headers, "Origin": str(staff.client.base_url).rstrip("/")}
    assert staff.client.post(VALIDATE, headers=same, json={}).status_code == 422


def test_a_forged_cross_site_sign_in_is_refused(staff: Staff) -> None:
    response = staff.client.post(
        "/api/v1/auth/login",
        json={"email": "owner@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_key_requests_need_no_csrf_token(staff: Staff) -> None:
    # Authorization headers are never attached by a browser to a forged request.
    response = staff.client.post(VALIDATE, headers=staff.callers["manage_key"].headers, json={})
    assert response.status_code == 422


# --- ending sessions ------------------------------------------------------------------------


def test_sign_out_ends_the_session_on_the_server(staff: Staff) -> None:
    caller = sign_in(staff.client, "viewer@example.com")
    assert staff.client.get("/api/v1/workspace", headers=caller.headers).status_code == 200
    out = staff.client.post("/api/v1/auth/logout", headers=caller.headers)
    assert out.status_code == 204
    # The same cookie, replayed, no longer works: the row is gone, not just the cookie.
    assert staff.client.get("/api/v1/workspace", headers=caller.headers).status_code == 401


def test_disabling_a_person_ends_their_sessions_at_once(staff: Staff, db: Database) -> None:
    caller = staff.callers["customer_success"]
    assert staff.client.get("/api/v1/workspace", headers=caller.headers).status_code == 200
    with db.transaction() as session:
        user = users.get_user(session, "customer_success@example.com")
        users.set_disabled(session, operator("test"), user, True)
    assert staff.client.get("/api/v1/workspace", headers=caller.headers).status_code == 401
    login = {"email": "customer_success@example.com", "password": PASSWORD}
    assert staff.client.post("/api/v1/auth/login", json=login).status_code == 401


def test_switching_workspace_needs_a_membership_and_changes_the_role(
    staff: Staff, db: Database
) -> None:
    from clm.store import workspaces as ws

    with db.transaction() as session:
        other = ws.create_workspace(session, "other").id
        third = ws.create_workspace(session, "third").id
        viewer = users.get_user(session, "viewer@example.com")
        users.set_role(session, operator("test", other), viewer, other, Role.ADMIN)
    caller = staff.callers["viewer"]
    denied = staff.client.put(
        "/api/v1/auth/session", headers=caller.headers, json={"workspace": str(third)}
    )
    assert denied.status_code == 404
    switched = staff.client.put(
        "/api/v1/auth/session", headers=caller.headers, json={"workspace": "other"}
    )
    assert switched.status_code == 200
    assert (switched.json()["workspace_id"], switched.json()["role"]) == (other, "admin")
    # Now an admin there: may list keys of "other", and sees that workspace, not "shop".
    assert staff.client.get("/api/v1/keys", headers=caller.headers).status_code == 200
    assert staff.client.get("/api/v1/workspace", headers=caller.headers).json()["slug"] == "other"


# --- lockout and rate limiting --------------------------------------------------------------


def _login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    client.cookies.clear()
    return response


def test_lockout_after_five_failures_refuses_even_the_right_password(
    db: Database, live_server: LiveServer
) -> None:
    add_user_without_workspace(db, "lock@example.com")
    with httpx.Client(base_url=live_server.url) as client:
        for _ in range(5):
            assert _login(client, "lock@example.com", "wrong password!").status_code == 401
        locked = _login(client, "lock@example.com", PASSWORD)
        assert locked.status_code == 429
        retry = int(locked.headers["retry-after"])
        assert 14 * 60 <= retry <= 15 * 60 + 1  # the 15-minute window, from the first failure
        # Another person is not locked out by it.
        add_user_without_workspace(db, "other@example.com")
        assert _login(client, "other@example.com", PASSWORD).status_code == 200
        # Once the failures are older than the window, the right password works again, and
        # success clears the count.
        with db.transaction() as session:
            session.execute(
                update(LoginFailure).values(at=datetime.now(UTC) - timedelta(minutes=16))
            )
        assert _login(client, "lock@example.com", PASSWORD).status_code == 200


def test_one_client_guessing_many_emails_is_rate_limited(
    db: Database, live_server: LiveServer
) -> None:
    add_user_without_workspace(db, "target@example.com")
    with httpx.Client(base_url=live_server.url) as client:
        for i in range(20):  # 20 different emails: no single one is locked
            assert _login(client, f"guess{i}@example.com", "wrong password!").status_code == 401
        assert _login(client, "target@example.com", PASSWORD).status_code == 429


def add_user_without_workspace(db: Database, email: str) -> None:
    with db.transaction() as session:
        users.create_user(session, operator("test"), email, PASSWORD)


def test_lockout_holds_in_another_server_process(db: Database, tmp_path: object) -> None:
    """The count lives in the database: a second app (as a second process would) sees it."""
    from tests.accounts.test_revocation import two_servers

    add_user(db, "both@example.com", _workspace(db), Role.VIEWER)
    with two_servers(db, tmp_path) as (first, second):  # type: ignore[arg-type]
        for _ in range(5):
            assert _login(first, "both@example.com", "wrong password!").status_code == 401
        assert _login(second, "both@example.com", PASSWORD).status_code == 429


def _workspace(db: Database) -> int:
    from clm.store import workspaces as ws

    with db.transaction() as session:
        return ws.create_workspace(session, "both").id
