"""CORS for the tracking API (``/v1``), so Segment's analytics.js on a customer's site can
send events with the workspace's write key.

Allowed origins are configured per workspace (``cors_origins``; default none). A preflight
carries no key, so it is answered when *some* workspace allows the origin; the request that
follows is checked against the workspace of its key (``clm.api.tracking``) and refused with
403, unstored, when that workspace does not allow the origin. Only then does the reply carry
``Access-Control-Allow-Origin``. No credentials (cookies) are ever allowed: the key travels
in the request. A plain ASGI middleware, so requests without ``Origin`` (servers, SDKs
outside browsers) pay one dictionary lookup.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clm.privacy.cors import AllowedOrigins

PREFIX = "/v1/"
STATE_KEY = "cors_origin"  # set by the tracking API once the origin is allowed for the key
_ALLOW_HEADERS = b"Authorization, Content-Type, Content-Encoding, X-Retry-Count"
_MAX_AGE = b"600"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class TrackingCors:
    def __init__(self, app: ASGIApp, origins: AllowedOrigins) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await self._preflight(origin, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                state: dict[str, Any] = scope.get("state") or {}
                headers = list(message.get("headers", []))
                headers.append((b"vary", b"Origin"))
                if state.get(STATE_KEY) == origin:
                    headers.append((b"access-control-allow-origin", origin.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str, send: Send) -> None:
        allowed = self.origins.allowed_anywhere(origin)
        headers = [(b"vary", b"Origin")]
        if allowed:
            status, body = 204, b""
            headers += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", b"POST, OPTIONS"),
                (b"access-control-allow-headers", _ALLOW_HEADERS),
                (b"access-control-max-age", _MAX_AGE),
            ]
        else:
            status = 403
            message = f"Origin {origin} is not allowed to send events"
            body = orjson.dumps({"code": "forbidden", "message": message, "errors": []})
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
