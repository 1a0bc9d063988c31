"""Signing in: password check with lockout and rate limiting, browser sessions, signing out.

A session is a 256-bit random token in an HttpOnly cookie; the database keeps its SHA-256, the
user, the workspace the person is working in, and a CSRF token the page must echo on every
state-changing request. Failed sign-ins are rows in ``login_failures``, so lockout holds across
every server process: after ``login_max_failures`` failures for one email (or
``login_max_client_failures`` from one client address) within the window, sign-in is refused
with 429 until the window has passed, whatever the password. A success clears the email's count.
Concurrent attempts may each pass the check before the others' failures commit, so a burst
can get a few more tries than the limit; the next attempt after them is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from clm.accounts.passwords import verify_password
from clm.accounts.roles import ROLE_PERMISSIONS, Principal, Role
from clm.accounts.users import normalise_email
from clm.config import get_settings
from clm.errors import AuthError, NotFound, RateLimited
from clm.store.engine import Database
from clm.store.models import LoginFailure, Membership, User, UserSession
from clm.store.workspaces import get_workspace


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    """A new session: ``token`` goes in the cookie, ``csrf_token`` to the page."""

    token: str
    csrf_token: str
    user_id: int
    workspace_id: int | None
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSession:
    principal: Principal
    csrf_token: str
    email: str


def _lockout(session: Session, email: str, client: str, now: datetime) -> None:
    settings = get_settings()
    since = now - timedelta(minutes=settings.login_window_minutes)
    for column, value, limit in (
        (LoginFailure.email, email, settings.login_max_failures),
        (LoginFailure.client, client, settings.login_max_client_failures),
    ):
        count, first = session.execute(
            select(func.count(), func.min(LoginFailure.at)).where(
                column == value, LoginFailure.at >= since
            )
        ).one()
        if count >= limit:
            oldest = first if first.tzinfo else first.replace(tzinfo=UTC)
            retry = oldest + timedelta(minutes=settings.login_window_minutes) - now
            raise RateLimited(
                "Too many failed sign-ins; try again later",
                retry_after=max(1, int(retry.total_seconds()) + 1),
            )


def _first_workspace(session: Session, user_id: int) -> int | None:
    return session.scalar(
        select(func.min(Membership.workspace_id)).where(Membership.user_id == user_id)
    )


def _workspace_for(session: Session, user_id: int, workspace: str | int | None) -> int | None:
    if workspace is None:
        return _first_workspace(session, user_id)
    workspace_id = get_workspace(session, workspace).id
    if (
        session.scalar(
            select(Membership.id).where(
                Membership.user_id == user_id, Membership.workspace_id == workspace_id
            )
        )
        is None
    ):
        raise NotFound(f"No workspace {workspace!r} for you")
    return workspace_id


def login(
    db: Database,
    email: str,
    password: str,
    client: str,
    workspace: str | int | None = None,
) -> SignedIn:
    """A new session for the right password; a failure is recorded (and committed) first.

    The password is checked outside any write transaction: argon2 takes tens of milliseconds
    by design, and on SQLite a write transaction holds the one writer lock (ingestion's too).
    """
    email = normalise_email(email)
    client = client[:64]
    now = datetime.now(UTC)
    with db.session() as session:
        _lockout(session, email, client, now)
        user = session.scalar(select(User).where(User.email == email))
        stored = user.password_hash if user else None
        user_id = user.id if user and user.disabled_at is None else None
    if not verify_password(stored, password) or user_id is None:
        with db.transaction() as session:
            session.add(LoginFailure(email=email, client=client, at=now))
        raise AuthError("Wrong email or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=get_settings().session_hours)
    with db.transaction() as session:
        session.execute(delete(LoginFailure).where(LoginFailure.email == email))
        workspace_id = _workspace_for(session, user_id, workspace)
        session.add(
            UserSession(
                token_hash=digest(token),
                user_id=user_id,
                workspace_id=workspace_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=expires,
            )
        )
    return SignedIn(token, csrf, user_id, workspace_id, expires)


def resolve(session: Session, token: str) -> ActiveSession | None:
    """The live session a cookie names (unexpired, user enabled), with the role it acts in."""
    return _resolve_hash(session, digest(token))


def _resolve_hash(session: Session, token_hash: str) -> ActiveSession | None:
    row = session.execute(
        select(UserSession, User.email, Membership.role)
        .join(User, User.id == UserSession.user_id)
        .outerjoin(
            Membership,
            (Membership.user_id == UserSession.user_id)
            & (Membership.workspace_id == UserSession.workspace_id),
        )
        .where(
            UserSession.token_hash == token_hash,
            UserSession.expires_at > datetime.now(UTC),
            User.disabled_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    user_session, email, role_name = row
    role = Role(role_name) if role_name else None
    principal = Principal(
        actor=f"user:{email}",
        permissions=ROLE_PERMISSIONS[role] if role else frozenset(),
        workspace_id=user_session.workspace_id if role else None,
        user_id=user_session.user_id,
        role=role,
        session_id=user_session.id,
    )
    return ActiveSession(principal, user_session.csrf_token, email)


def logout(session: Session, token: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == digest(token)))


def switch_workspace(session: Session, session_id: int, user_id: int, workspace: str | int) -> int:
    """Point the session at another workspace the person belongs to."""
    workspace_id = _workspace_for(session, user_id, workspace)
    found = session.get(UserSession, session_id)
    if found is None:
        raise AuthError("Session ended")
    found.workspace_id = workspace_id
    assert workspace_id is not None
    return workspace_id


def resolve_by_id(session: Session, session_id: int) -> ActiveSession | None:
    """The session by id (after a change in the same transaction)."""
    token_hash = session.scalar(select(UserSession.token_hash).where(UserSession.id == session_id))
    if token_hash is None:
        return None
    return _resolve_hash(session, token_hash)
