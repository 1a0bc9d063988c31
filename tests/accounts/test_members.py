"""Managing people through the API: admins manage members but never owners; a workspace
keeps an owner; a removed member's session stops working there at once."""

from __future__ import annotations

from tests.accounts.conftest import Staff


def _member(staff: Staff, caller: str, email: str, role: str) -> int:
    response = staff.client.put(
        "/api/v1/members",
        headers=staff.callers[caller].headers,
        json={"email": email, "role": role},
    )
    return response.status_code


def _user_id(staff: Staff, email: str) -> int:
    members = staff.client.get("/api/v1/members", headers=staff.callers["owner"].headers).json()
    return next(m["id"] for m in members if m["email"] == email)


def test_an_admin_manages_members_but_not_owners(staff: Staff) -> None:
    assert _member(staff, "admin", "new@example.com", "marketer") == 200
    assert _member(staff, "admin", "new@example.com", "owner") == 403
    assert _member(staff, "admin", "owner@example.com", "viewer") == 403  # demoting an owner
    owner_id = _user_id(staff, "owner@example.com")
    removed = staff.client.delete(
        f"/api/v1/members/{owner_id}", headers=staff.callers["admin"].headers
    )
    assert removed.status_code == 403
    assert _member(staff, "owner", "new@example.com", "owner") == 200


def test_the_last_owner_stays(staff: Staff) -> None:
    owner_id = _user_id(staff, "owner@example.com")
    alone = staff.client.delete(
        f"/api/v1/members/{owner_id}", headers=staff.callers["owner"].headers
    )
    assert alone.status_code == 409
    assert _member(staff, "owner", "owner@example.com", "admin") == 409
    # With a second owner, the first may step down.
    assert _member(staff, "owner", "second@example.com", "owner") == 200
    assert _member(staff, "owner", "owner@example.com", "admin") == 200


def test_a_removed_member_loses_access_at_once(staff: Staff) -> None:
    viewer = staff.callers["viewer"]
    assert staff.client.get("/api/v1/workspace", headers=viewer.headers).status_code == 200
    viewer_id = _user_id(staff, "viewer@example.com")
    gone = staff.client.delete(
        f"/api/v1/members/{viewer_id}", headers=staff.callers["admin"].headers
    )
    assert gone.status_code == 204
    assert staff.client.get("/api/v1/workspace", headers=viewer.headers).status_code == 401
    members = staff.client.get("/api/v1/members", headers=staff.callers["owner"].headers).json()
    assert "viewer@example.com" not in {m["email"] for m in members}


def test_a_role_change_applies_to_the_open_session(staff: Staff) -> None:
    marketer = staff.callers["marketer"]
    assert staff.client.get("/api/v1/keys", headers=marketer.headers).status_code == 403
    assert _member(staff, "owner", "marketer@example.com", "admin") == 200
    assert staff.client.get("/api/v1/keys", headers=marketer.headers).status_code == 200
