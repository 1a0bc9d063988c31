"""Password reset links: expiring, single-use, and useless to anyone who reads the database.

The link carries a 256-bit random token; only its SHA-256 is stored, with an expiry. Using it
marks it used in the same conditional UPDATE that checks it is unused and unexpired, so two
concurrent uses (from two processes) cannot both succeed. Setting a password kills every other
open link of the person and signs them out everywhere. We chose a stored random token over a
stateless signature because single use needs a row anyway, and a row can be revoked.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from clm.accounts import users
from clm.accounts.audit import Actor
from clm.accounts.sessions import digest
from clm.config import get_settings
from clm.errors import AuthError
from clm.store.models import LoginFailure, PasswordReset, User

RESET_PATH = "/reset.html"


def reset_url(token: str, base_url: str | None = None) -> str:
    base = (base_url or get_settings().public_url).rstrip("/")
    return f"{base}{RESET_PATH}#token={quote(token)}"


def create_reset(session: Session, user: User, minutes: int | None = None) -> str:
    """A new reset token for ``user`` (the plain text exists only in the link)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    life = minutes if minutes is not None else get_settings().reset_link_minutes
    session.add(
        PasswordReset(
            token_hash=digest(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(minutes=life),
        )
    )
    session.flush()
    return token


def request_reset(session: Session, email: str) -> tuple[User, str] | None:
    """A token for an enabled user with that email; ``None`` otherwise (the caller answers the
    same either way, so the form does not reveal who has an account)."""
    user = users.find_user(session, email)
    if user is None or user.disabled_at is not None:
        return None
    return user, create_reset(session, user)


def complete_reset(session: Session, token: str, password: str) -> User:
    """Set the password a valid, unused, unexpired link allows; the link dies with it."""
    now = datetime.now(UTC)
    claimed = session.execute(
        update(PasswordReset)
        .where(
            PasswordReset.token_hash == digest(token),
            PasswordReset.used_at.is_(None),
            PasswordReset.expires_at > now,
        )
        .values(used_at=now)
        .returning(PasswordReset.user_id)
    ).first()
    if claimed is None:
        raise AuthError("This reset link is invalid, used or expired; ask for a new one")
    user = session.get(User, claimed.user_id)
    if user is None or user.disabled_at is not None:
        raise AuthError("This account is disabled")
    users.set_password(session, Actor(f"user:{user.email}", user_id=user.id), user, password)
    session.execute(delete(LoginFailure).where(LoginFailure.email == user.email))
    return user


def open_links(session: Session, user_id: int) -> int:
    """How many unused, unexpired links the person has (for tests and the CLI)."""
    now = datetime.now(UTC)
    return len(
        session.scalars(
            select(PasswordReset.id).where(
                PasswordReset.user_id == user_id,
                PasswordReset.used_at.is_(None),
                PasswordReset.expires_at > now,
            )
        ).all()
    )
