"""Tombstones of erased people: keyed hashes of their identifiers, and the lookup ingestion
uses to refuse those identifiers later.

A plain hash of an email could be reversed by hashing a list of emails; an HMAC with the
server's secret cannot be, by anyone without the secret. The digest also covers the workspace
and the identifier's kind, so equal values in two workspaces or of two kinds never collide.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import Connection, select

from clm.config import signing_key
from clm.store.bulk import select_in
from clm.store.models import Tombstone

Key = tuple[str, str]  # (kind, value) as identities store them


def tombstone_key() -> bytes:
    """The key of the tombstone HMAC, derived from the server secret (``CLM_SECRET_KEY``).

    The one server secret is managed by ``clm.config`` (generated locally, required in
    production).
    """
    return hmac.new(signing_key().encode(), b"clm-tombstone-v1", hashlib.sha256).digest()


def identifier_digest(key: bytes, workspace_id: int, kind: str, value: str) -> str:
    """The tombstone of one identifier: hex HMAC-SHA256 of workspace, kind and value."""
    message = f"{workspace_id}\x1f{kind}\x1f{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def has_tombstones(connection: Connection, workspace_id: int) -> bool:
    """Whether anyone was ever erased here: when not, ingestion skips hashing altogether."""
    found = connection.execute(
        select(Tombstone.id).where(Tombstone.workspace_id == workspace_id).limit(1)
    ).first()
    return found is not None


def erased_keys(connection: Connection, workspace_id: int, keys: Iterable[Key]) -> set[Key]:
    """Which of ``keys`` belonged to an erased person of this workspace."""
    key = tombstone_key()
    by_digest = {identifier_digest(key, workspace_id, kind, value): (kind, value)
                 for kind, value in set(keys)}  # fmt: skip
    rows = select_in(
        connection, "digest", "privacy_tombstones", [("workspace_id", workspace_id)], "digest",
        list(by_digest),
    )  # fmt: skip
    return {by_digest[row[0]] for row in rows}
