"""Dependencies: the database, and who is calling. ``Annotated`` aliases keep routes short and
make it impossible to forget authorization: each names the permission its routes need.

A caller is a machine key (``Authorization: Bearer``, or Basic with the key as user name, as
Segment clients send it) or a signed-in person (the ``clm_session`` cookie). Cookie requests
that change something (POST, PUT, PATCH, DELETE) must echo the session's CSRF token in
``X-CSRF-Token`` and, when the browser sends ``Origin``, come from this server's own origin.
Key requests need no CSRF token: a browser never attaches an ``Authorization`` header to a
forged cross-site request, so there is no ambient credential to ride on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from clm.accounts import Permission, Principal, authorize
from clm.accounts.keys import principal_for_key
from clm.accounts.sessions import ActiveSession, resolve
from clm.config import get_settings
from clm.errors import AuthError, PermissionDenied
from clm.store.engine import Database

SESSION_COOKIE = "clm_session"
CSRF_COOKIE = "clm_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


def key_principal(db: Database, key: str | None) -> Principal:
    if not key:
        raise AuthError("Missing API key")
    principal = principal_for_key(db, key)
    if principal is None:
        raise AuthError("Unknown, revoked or expired API key")
    return principal


def same_origin(request: Request) -> bool:
    """False only when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and request.method in SAFE_METHODS):
        return True
    netloc = urlsplit(origin).netloc.lower()
    public = urlsplit(get_settings().public_url).netloc.lower()
    # The Host header, or the public address people use (a proxy may rewrite Host).
    return netloc in (request.headers.get("host", "").lower(), public)


def check_csrf(request: Request, expected: str) -> None:
    if not same_origin(request):
        raise PermissionDenied("Cross-origin request refused", code="csrf_failed")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise PermissionDenied(f"Missing or wrong {CSRF_HEADER} header", code="csrf_failed")


def active_session(request: Request, db: Database) -> ActiveSession | None:
    """The cookie's session (CSRF-checked for changes), ``None`` without a cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with db.session() as session:
        active = resolve(session, token)
    if active is None:
        raise AuthError("Session expired or signed out; sign in again")
    if request.method not in SAFE_METHODS:
        check_csrf(request, active.csrf_token)
    return active


def caller(request: Request, db: Database) -> Principal | None:
    """Who is calling: a key if one is sent, else the session cookie, else nobody."""
    header = request.headers.get("authorization")
    key = bearer_token(header) or basic_username(header)
    if key:
        return key_principal(db, key)
    active = active_session(request, db)
    return active.principal if active else None


class Require:
    """The dependency for routes that need ``permission``. It names the permission, so each
    route's need is read from its own dependencies (``ClmRoute`` puts it in the OpenAPI
    operation as ``x-permission``, and the web app's buttons follow it)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission
        self.__name__ = f"require_{permission}"

    def __call__(self, request: Request, db: DatabaseDep) -> Principal:
        return authorize(caller(request, db), self.permission)


def require(permission: Permission) -> Require:
    """The dependency for routes that need ``permission``."""
    return Require(permission)


def _signed_in(request: Request, db: DatabaseDep) -> ActiveSession:
    active = active_session(request, db)
    if active is None:
        raise AuthError("Not signed in")
    return active


Reader = Annotated[Principal, Depends(require(Permission.READ))]
Support = Annotated[Principal, Depends(require(Permission.SUPPORT))]
Marketer = Annotated[Principal, Depends(require(Permission.MARKETING))]
Configurer = Annotated[Principal, Depends(require(Permission.CONFIGURE))]
MemberAdmin = Annotated[Principal, Depends(require(Permission.MEMBERS))]
Auditor = Annotated[Principal, Depends(require(Permission.AUDIT))]
AdminKey = Annotated[Principal, Depends(require(Permission.WORKSPACES))]
SignedIn = Annotated[ActiveSession, Depends(_signed_in)]


def workspace_id(principal: Principal) -> int:
    assert principal.workspace_id is not None  # guaranteed by authorize()
    return principal.workspace_id
