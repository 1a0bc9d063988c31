"""Signed, expiring, optionally single-use tokens for the public links.

A token is an itsdangerous signature over a small JSON payload, salted by its purpose (a survey
token can never unsubscribe anyone). Single-use tokens carry a ``jti`` recorded in
``engage_tokens`` when issued and marked used when consumed. Unsubscribe links, one in every
marketing email, use a compact format (``v2.<payload>.<HMAC-SHA256>``, same claims, same purpose
separation, a few times cheaper to sign); ``verify`` reads both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.serializer import Serializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clm.config import signing_key
from clm.errors import AuthError, Conflict
from clm.store.models import EngageToken

DAY = 86_400


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says."""

    purpose: str
    workspace_id: int
    customer_id: int | None
    subject: str
    jti: str
    data: dict[str, Any]


def _serializer(purpose: str, secret: str | None = None) -> URLSafeTimedSerializer:
    return _serializer_for(purpose, secret or signing_key())


class _Uncompressed(URLSafeTimedSerializer):
    """Never tries zlib: our payloads are too small to gain from it, and trying cost most of
    the signing time. Tokens stay readable by any ``URLSafeTimedSerializer`` (and compressed
    ones by this)."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


@lru_cache(maxsize=32)
def _serializer_for(purpose: str, secret: str) -> URLSafeTimedSerializer:
    # Built once per purpose and key: a send decides thousands of unsubscribe links.
    return _Uncompressed(secret, salt=f"clm.engage.{purpose}")


def sign(
    purpose: str,
    workspace_id: int,
    customer_id: int | None,
    subject: str = "",
    *,
    jti: str | None = None,
    data: dict[str, Any] | None = None,
    secret: str | None = None,
) -> tuple[str, str]:
    """(token, jti): a signed token; nothing is stored (see ``issue`` for single-use ones)."""
    jti = jti or secrets.token_urlsafe(12)
    payload = {"w": workspace_id, "c": customer_id, "s": subject, "j": jti, "d": data or {}}
    return str(_serializer(purpose, secret).dumps(payload)), jti


def issue(
    session: Session,
    purpose: str,
    workspace_id: int,
    customer_id: int | None,
    subject: str = "",
    *,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """A single-use token, recorded in the caller's transaction."""
    token, jti = sign(purpose, workspace_id, customer_id, subject, data=data)
    session.add(
        EngageToken(
            workspace_id=workspace_id,
            jti=jti,
            purpose=purpose,
            subject=subject,
            customer_id=customer_id,
            issued_at=now or datetime.now(UTC),
        )
    )
    return token, jti


_COMPACT = "v2."


@lru_cache(maxsize=32)
def _compact_key(purpose: str, secret: str) -> bytes:
    return hashlib.sha256(f"clm.engage.{purpose}:{secret}".encode()).digest()


def _mac(purpose: str, secret: str, body: str) -> str:
    digest = hmac.new(_compact_key(purpose, secret), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def sign_compact(
    purpose: str,
    workspace_id: int,
    customer_id: int | None,
    subject: str = "",
    *,
    data: dict[str, Any] | None = None,
    secret: str | None = None,
    now: float | None = None,
) -> str:
    """A stateless link token, as ``sign`` makes but a few times cheaper: HMAC-SHA256 over a
    compact JSON payload with its issue time (for links in every marketing email)."""
    jti = secrets.token_urlsafe(9)
    issued = int(now if now is not None else time.time())
    payload = [workspace_id, customer_id, subject, jti, data or {}, issued]
    body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
    return f"{_COMPACT}{body}.{_mac(purpose, secret or signing_key(), body)}"


def _verify_compact(
    token: str, purpose: str, max_age_seconds: int, secret: str | None, now: float | None
) -> TokenClaims:
    body, _, mac = token.removeprefix(_COMPACT).partition(".")
    if not hmac.compare_digest(mac, _mac(purpose, secret or signing_key(), body)):
        raise AuthError("This link is not valid", code="token_invalid")
    try:
        w, c, subject, jti, data, issued = orjson.loads(base64.urlsafe_b64decode(body + "=="))
    except ValueError as exc:
        raise AuthError("This link is not valid", code="token_invalid") from exc
    if (now if now is not None else time.time()) - issued > max_age_seconds:
        raise AuthError("This link has expired", code="token_expired")
    return TokenClaims(purpose, int(w), c, str(subject), str(jti), dict(data))


def verify(
    token: str,
    purpose: str,
    max_age_seconds: int,
    *,
    secret: str | None = None,
    now: float | None = None,
) -> TokenClaims:
    """The claims of a valid token (either format); ``AuthError`` when tampered with or
    expired. ``now`` (epoch seconds) only for compact tokens, to test expiry."""
    if token.startswith(_COMPACT):
        return _verify_compact(token, purpose, max_age_seconds, secret, now)
    try:
        payload = _serializer(purpose, secret).loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        raise AuthError("This link has expired", code="token_expired") from exc
    except BadSignature as exc:
        raise AuthError("This link is not valid", code="token_invalid") from exc
    if not isinstance(payload, dict) or "w" not in payload:
        raise AuthError("This link is not valid", code="token_invalid")
    return TokenClaims(
        purpose=purpose,
        workspace_id=int(payload["w"]),
        customer_id=payload.get("c"),
        subject=str(payload.get("s", "")),
        jti=str(payload["j"]),
        data=dict(payload.get("d", {})),
    )


def is_used(session: Session, jti: str) -> bool:
    row = session.execute(select(EngageToken.used_at).where(EngageToken.jti == jti)).first()
    if row is None:
        raise AuthError("This link is not valid", code="token_invalid")
    return row.used_at is not None


def consume(session: Session, jti: str, now: datetime | None = None) -> None:
    """Mark a single-use token used; ``Conflict`` if it already was (or never issued)."""
    result = session.execute(
        update(EngageToken)
        .where(EngageToken.jti == jti, EngageToken.used_at.is_(None))
        .values(used_at=now or datetime.now(UTC))
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        if session.scalar(select(EngageToken.id).where(EngageToken.jti == jti)) is None:
            raise AuthError("This link is not valid", code="token_invalid")
        raise Conflict("This link was already used", code="token_used")
