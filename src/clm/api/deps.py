"""Dependencies: the database, and who is calling. ``Annotated`` aliases keep routes short and
make it impossible to forget authentication."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from clm.errors import AuthError, PermissionDenied
from clm.store.engine import Database
from clm.store.workspaces import Credential, authenticate


async def get_db(request: Request) -> Database:
    """The app's database handle. ``async`` because it does no I/O: FastAPI runs a plain
    ``def`` dependency in its thread pool, a hop that cost ingestion ~16% of its CPU."""
    db: Database = request.app.state.db
    return db


DatabaseDep = Annotated[Database, Depends(get_db)]


def basic_username(header: str | None) -> str | None:
    """The user name of an HTTP Basic header: where Segment clients put the write key."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


def bearer_token(header: str | None) -> str | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip() or None


def credential_for(db: Database, key: str | None) -> Credential:
    if not key:
        raise AuthError("Missing API key")
    with db.session() as session:
        credential = authenticate(session, key)
    if credential is None:
        raise AuthError("Unknown or revoked API key")
    return credential


def _bearer(request: Request, db: DatabaseDep) -> Credential:
    header = request.headers.get("authorization")
    return credential_for(db, bearer_token(header) or basic_username(header))


async def _workspace(credential: Annotated[Credential, Depends(_bearer)]) -> Credential:
    if credential.kind != "secret" or credential.workspace_id is None:
        raise PermissionDenied("This needs a workspace secret key")
    return credential


async def _admin(credential: Annotated[Credential, Depends(_bearer)]) -> Credential:
    if credential.kind != "admin":
        raise PermissionDenied("This needs an admin key")
    return credential


WorkspaceKey = Annotated[Credential, Depends(_workspace)]
AdminKey = Annotated[Credential, Depends(_admin)]


def workspace_id(credential: Credential) -> int:
    assert credential.workspace_id is not None  # guaranteed by _workspace
    return credential.workspace_id
