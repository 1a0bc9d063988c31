"""Sign-in, members and the audit log under ``/api/v1``.

``POST /auth/login`` sets two cookies: ``clm_session`` (HttpOnly, SameSite=Lax, Secure over
HTTPS) and ``clm_csrf`` (readable by the page, which sends it back as ``X-CSRF-Token``). Reset
links go out through the email channel of a workspace the person belongs to; the answer is the
same whether or not the email has an account.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from clm.accounts import Role, list_records, resets, sessions, users
from clm.accounts.audit import MAX_PAGE, AuditPublic
from clm.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Auditor,
    DatabaseDep,
    MemberAdmin,
    SignedIn,
    same_origin,
    workspace_id,
)
from clm.api.routing import ClmRoute
from clm.config import get_settings
from clm.engage import repository as engage_repo
from clm.engage.delivery import DeliveryError, SmtpSession
from clm.engage.schemas import EmailProvider
from clm.errors import NotFound, PermissionDenied
from clm.store.models import Membership, Workspace
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1", tags=["accounts"], route_class=ClmRoute)
log = logging.getLogger("clm.accounts")


class LoginBody(BaseModel):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    workspace: Annotated[str | None, Field(max_length=64)] = None


class WorkspaceRole(BaseModel):
    id: int
    slug: str
    role: Role


class SessionPublic(BaseModel):
    """Who is signed in, where, as what; ``csrf_token`` goes in ``X-CSRF-Token``."""

    user_id: int
    email: str
    workspace_id: int | None
    role: Role | None
    csrf_token: str
    workspaces: list[WorkspaceRole]


class SwitchBody(BaseModel):
    workspace: Annotated[str, Field(min_length=1, max_length=64)]


class ResetRequest(BaseModel):
    email: Annotated[str, Field(min_length=3, max_length=320)]


class ResetBody(BaseModel):
    token: Annotated[str, Field(min_length=16, max_length=200)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class MemberBody(BaseModel):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    role: Role


def _secure(request: Request) -> bool:
    mode = get_settings().cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _session_public(db: DatabaseDep, active: sessions.ActiveSession) -> SessionPublic:
    p = active.principal
    assert p.user_id is not None
    with db.session() as session:
        rows = session.execute(
            select(Workspace.id, Workspace.slug, Membership.role)
            .join(Membership, Membership.workspace_id == Workspace.id)
            .where(Membership.user_id == p.user_id)
            .order_by(Workspace.id)
        )
        spaces = [WorkspaceRole(id=i, slug=s, role=Role(r)) for i, s, r in rows]
    return SessionPublic(
        user_id=p.user_id,
        email=active.email,
        workspace_id=p.workspace_id,
        role=p.role,
        csrf_token=active.csrf_token,
        workspaces=spaces,
    )


@router.post("/auth/login")
def login(body: LoginBody, request: Request, response: Response, db: DatabaseDep) -> SessionPublic:
    """Sign in with email and password; 429 with ``Retry-After`` while locked out."""
    if not same_origin(request):
        raise PermissionDenied("Cross-origin sign-in refused", code="csrf_failed")
    client = request.client.host if request.client else "unknown"
    signed = sessions.login(db, body.email, body.password, client, body.workspace)
    secure = _secure(request)
    max_age = int(get_settings().session_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE, signed.token, max_age=max_age, httponly=True, samesite="lax",
        secure=secure, path="/",
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, signed.csrf_token, max_age=max_age, httponly=False, samesite="strict",
        secure=secure, path="/",
    )  # fmt: skip
    with db.session() as session:
        active = sessions.resolve(session, signed.token)
    assert active is not None
    return _session_public(db, active)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, response: Response, db: DatabaseDep, _: SignedIn) -> None:
    with db.transaction() as session:
        sessions.logout(session, request.cookies[SESSION_COOKIE])
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.get("/auth/session")
def current_session(db: DatabaseDep, active: SignedIn) -> SessionPublic:
    return _session_public(db, active)


@router.put("/auth/session")
def switch_workspace(body: SwitchBody, db: DatabaseDep, active: SignedIn) -> SessionPublic:
    """Work in another workspace the person belongs to."""
    p = active.principal
    assert p.session_id is not None and p.user_id is not None
    with db.transaction() as session:
        sessions.switch_workspace(session, p.session_id, p.user_id, body.workspace)
        token_row = sessions.resolve_by_id(session, p.session_id)
    assert token_row is not None
    return _session_public(db, token_row)


@router.post("/auth/reset-request", status_code=202)
def request_reset(body: ResetRequest, db: DatabaseDep) -> dict[str, str]:
    """Email a reset link if the address has an account; the answer never says whether."""
    with db.transaction() as session:
        issued = resets.request_reset(session, body.email)
        if issued is not None:
            user, token = issued
            workspace_ids = list(
                session.scalars(
                    select(Membership.workspace_id)
                    .where(Membership.user_id == user.id)
                    .order_by(Membership.workspace_id)
                )
            )
            email = user.email
    if issued is not None:
        _send_reset(db, email, workspace_ids, resets.reset_url(token))
    return {"status": "If that address has an account, a reset link is on its way."}


@router.post("/auth/reset", status_code=204)
def complete_reset(body: ResetBody, db: DatabaseDep) -> None:
    """Set a new password with a reset link's token (once; the link then dies)."""
    with db.transaction() as session:
        resets.complete_reset(session, body.token, body.password)


@dataclass
class _ResetMail:
    """A reset email in the shape the SMTP channel sends (no tracking, no unsubscribe)."""

    workspace_id: int
    address: str | None
    payload: dict[str, Any]
    idempotency_key: str
    id: int = 0


def _send_reset(db: DatabaseDep, email: str, workspace_ids: list[int], url: str) -> None:
    """Through the first of the person's workspaces with an email channel. The link is a
    secret, so it is sent at once and never stored in the outbox."""
    provider: EmailProvider | None = None
    with db.session() as session:
        for ws_id in workspace_ids:
            try:
                found = engage_repo.get_provider(session, ws_id, "email")
            except NotFound:
                continue
            if isinstance(found, EmailProvider):
                provider, sending_ws = found, ws_id
                break
    if provider is None:
        log.warning("password reset asked, but no workspace of the user has an email channel")
        return
    text = (
        "Someone (hopefully you) asked to reset your CLM password.\n\n"
        f"Open this link within {get_settings().reset_link_minutes} minutes to choose "
        f"a new one; it works once:\n\n{url}\n\nIf it was not you, ignore this email."
    )
    mail = _ResetMail(
        sending_ws,
        email,
        {"subject": "Reset your CLM password", "text": text},
        f"reset-{secrets.token_hex(8)}",
    )
    smtp = SmtpSession(provider.model_copy(update={"track_engagement": False}))
    try:
        smtp.send(mail)
    except DeliveryError as exc:
        log.warning("password reset email not delivered: %s", exc)
    finally:
        smtp.close()


@router.get("/members")
def list_members(db: DatabaseDep, who: MemberAdmin) -> list[users.UserPublic]:
    with db.session() as session:
        return users.list_users(session, workspace_id(who))


@router.put("/members")
def put_member(body: MemberBody, db: DatabaseDep, who: MemberAdmin) -> users.UserPublic:
    """Add a person (created without a password: they set one with a reset link) or change
    their role. Only an owner makes, changes or removes an owner."""
    with db.transaction() as session:
        user = users.find_user(session, body.email) or users.create_user(session, who, body.email)
        users.set_role(session, who, user, workspace_id(who), body.role)
        return next(u for u in users.list_users(session, workspace_id(who)) if u.id == user.id)


@router.delete("/members/{user_id}", status_code=204)
def remove_member(user_id: RowId, db: DatabaseDep, who: MemberAdmin) -> None:
    with db.transaction() as session:
        users.remove_member(session, who, users.get_user(session, user_id), workspace_id(who))


@router.get("/audit")
def audit_log(
    db: DatabaseDep,
    who: Auditor,
    before_id: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditPublic]:
    """The workspace's changes, newest first; page with ``before_id`` = the last id seen."""
    with db.session() as session:
        return list_records(
            session, workspace_id(who), before_id=before_id, limit=limit, action=action
        )
