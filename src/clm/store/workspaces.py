"""Workspaces and their API keys.

A key is shown once, when made, and stored as its SHA-256 digest: keys are 256-bit random
tokens, so a fast digest is as safe as a password hash and lets every request look one up by
index. Kinds, least privilege first: ``write`` (send events only, safe in a browser), ``read``
(read one workspace), ``manage`` (read and change one workspace; ``secret`` is its older name and
keeps working), ``admin`` (create workspaces). What each may do is ``clm.accounts.roles``.

Keys are checked against the database on every request, with no cache in the process, so a
revocation holds at once in every server process.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clm.errors import Conflict, FieldError, NotFound, ValidationError
from clm.store.models import ApiKey, Workspace

KeyKind = Literal["write", "read", "manage", "secret", "admin"]
_PREFIXES: dict[str, str] = {
    "write": "clm_wk_",
    "read": "clm_rk_",
    "manage": "clm_mk_",
    "secret": "clm_sk_",
    "admin": "clm_ak_",
}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key; ``key`` is the only time the plain text exists."""

    id: int
    kind: KeyKind
    key: str
    workspace_id: int | None


def now() -> datetime:
    return datetime.now(UTC)


def create_workspace(session: Session, slug: str, name: str | None = None) -> Workspace:
    if not _SLUG.match(slug):
        raise ValidationError(
            "Invalid workspace slug",
            [
                FieldError(
                    ("slug",), "use 1-63 lower-case letters, digits and dashes, starting with one"
                )
            ],
        )
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise Conflict(f"Workspace {slug!r} already exists")
    workspace = Workspace(slug=slug, name=name or slug, settings={}, created_at=now())
    session.add(workspace)
    session.flush()
    return workspace


def get_workspace(session: Session, ref: str | int) -> Workspace:
    """A workspace by id or slug."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        found = session.get(Workspace, int(ref))
    else:
        found = session.scalar(select(Workspace).where(Workspace.slug == ref))
    if found is None:
        raise NotFound(f"No workspace {ref!r}")
    return found


def list_workspaces(session: Session) -> list[Workspace]:
    return list(session.scalars(select(Workspace).order_by(Workspace.id)))


def issue_key(
    session: Session,
    kind: KeyKind,
    workspace_id: int | None = None,
    name: str = "",
    expires_at: datetime | None = None,
) -> IssuedKey:
    if kind not in _PREFIXES:
        raise ValidationError(
            "Unknown key kind", [FieldError(("kind",), "use write, read, manage or admin")]
        )
    if (kind == "admin") != (workspace_id is None):
        raise ValidationError("Admin keys belong to no workspace; other keys to exactly one")
    if expires_at is not None and expires_at <= now():
        raise ValidationError(
            "Expiry in the past", [FieldError(("expires_at",), "must be in the future")]
        )
    plain = _PREFIXES[kind] + secrets.token_urlsafe(32)
    row = ApiKey(
        workspace_id=workspace_id,
        kind=kind,
        name=name,
        prefix=plain[:12],
        key_hash=hash_key(plain),
        created_at=now(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return IssuedKey(id=row.id, kind=kind, key=plain, workspace_id=workspace_id)


def list_keys(session: Session, workspace_id: int | None) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: int, workspace_id: int | None) -> ApiKey:
    """Revoke a key of the workspace; every process refuses it from the next request on."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id)
        .where(ApiKey.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"No active key {key_id}")
    revoked = session.get(ApiKey, key_id)
    assert revoked is not None
    return revoked
