"""Workspaces and their API keys.

A key is shown once, when made, and stored as its SHA-256 digest: keys are 256-bit random
tokens, so a fast digest is as safe as a password hash and lets every request look one up by
index. Three kinds, least privilege first: ``write`` (send events only, safe in a browser),
``secret`` (read and manage one workspace), ``admin`` (create workspaces).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clm.errors import Conflict, FieldError, NotFound, ValidationError
from clm.store.models import ApiKey, Workspace

KeyKind = Literal["write", "secret", "admin"]
_PREFIXES: dict[str, str] = {"write": "clm_wk_", "secret": "clm_sk_", "admin": "clm_ak_"}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Credential:
    """What an authenticated key may touch."""

    key_id: int
    kind: KeyKind
    workspace_id: int | None


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
    session: Session, kind: KeyKind, workspace_id: int | None = None, name: str = ""
) -> IssuedKey:
    if kind not in _PREFIXES:
        raise ValidationError(
            "Unknown key kind", [FieldError(("kind",), "use write, secret or admin")]
        )
    if (kind == "admin") != (workspace_id is None):
        raise ValidationError(
            "Admin keys belong to no workspace; write and secret keys to exactly one"
        )
    plain = _PREFIXES[kind] + secrets.token_urlsafe(32)
    row = ApiKey(
        workspace_id=workspace_id,
        kind=kind,
        name=name,
        prefix=plain[:12],
        key_hash=hash_key(plain),
        created_at=now(),
    )
    session.add(row)
    session.flush()
    return IssuedKey(id=row.id, kind=kind, key=plain, workspace_id=workspace_id)


def list_keys(session: Session, workspace_id: int | None) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: int, workspace_id: int | None) -> None:
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id)
        .where(ApiKey.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"No active key {key_id}")
    _cache.clear()


class _CredentialCache:
    """Keys are looked up on every ingest request: keep answers for a few seconds."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Credential | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, Credential | None]:
        with self._lock:
            entry = self._entries.get(digest)
        if entry and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def put(self, digest: str, credential: Credential | None) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, credential)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _CredentialCache()


def authenticate(session: Session, key: str) -> Credential | None:
    """The credential a plain key stands for, or ``None`` when unknown or revoked."""
    digest = hash_key(key)
    hit, credential = _cache.get(digest)
    if hit:
        return credential
    row = session.execute(
        select(ApiKey.id, ApiKey.kind, ApiKey.workspace_id).where(
            ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
        )
    ).first()
    credential = Credential(row.id, row.kind, row.workspace_id) if row else None
    _cache.put(digest, credential)
    return credential
