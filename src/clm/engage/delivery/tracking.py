"""Email engagement: an open pixel and signed click-through links, written to the event log.

At delivery every ``http(s)`` link of the HTML part (but the unsubscribe link) becomes
``/public/e/c/<token>?u=<url>`` and a 1×1 pixel ``/public/e/o/<token>.gif`` is appended. The
token signs (workspace, outbox message, url), so the redirect can only lead where the email
said: no open redirect. Tokens do not expire: an email read a year later still counts.

An open is recorded once per message (``Email Opened``), a click once per message and link
(``Email Clicked``), both on the ``email`` channel with the outbox ``message_id``, so that
stages, health and playbooks see them like anything else a customer does.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote

from clm.config import get_settings, signing_key
from clm.engage import eventlog
from clm.engage import repository as repo
from clm.errors import AuthError
from clm.store.engine import Database
from clm.store.models import EngageMessage

OPENED, CLICKED = "Email Opened", "Email Clicked"
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


@lru_cache(maxsize=8)
def _tracking_key(secret: str) -> bytes:
    return hashlib.sha256(f"clm.engage.tracking:{secret}".encode()).digest()


def _signature(kind: str, workspace_id: int, message_id: int, url: str = "") -> str:
    key = _tracking_key(signing_key())
    text = f"{kind}:{workspace_id}:{message_id}:{url}".encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:32]


def _token(kind: str, workspace_id: int, message_id: int, url: str = "") -> str:
    return f"{workspace_id}.{message_id}.{_signature(kind, workspace_id, message_id, url)}"


def _verify(kind: str, token: str, url: str = "") -> tuple[int, int]:
    try:
        workspace, message, signature = token.split(".")
        workspace_id, message_id = int(workspace), int(message)
    except ValueError as exc:
        raise AuthError("This link is not valid", code="token_invalid") from exc
    expected = _signature(kind, workspace_id, message_id, url)
    if not hmac.compare_digest(signature, expected):
        raise AuthError("This link is not valid", code="token_invalid")
    return workspace_id, message_id


def _base() -> str:
    return f"{get_settings().public_url.rstrip('/')}/public/e"


def tracked_html(body: str, workspace_id: int, message_id: int) -> str:
    """The HTML part with its links going through the click redirect and an open pixel."""
    base = _base()

    def rewrite(match: re.Match[str]) -> str:
        url = html.unescape(match.group(1))
        if "/public/unsubscribe" in url or url.startswith(base):
            return match.group(0)
        token = _token("click", workspace_id, message_id, url)
        tracked = f"{base}/c/{token}?u={quote(url, safe='')}"
        return f'href="{html.escape(tracked, quote=True)}"'

    pixel = (
        f'<img src="{base}/o/{_token("open", workspace_id, message_id)}.gif" '
        'width="1" height="1" alt="" style="display:none">'
    )
    rewritten = _HREF.sub(rewrite, body)
    closing = rewritten.lower().rfind("</body>")
    if closing == -1:
        return rewritten + pixel
    return rewritten[:closing] + pixel + rewritten[closing:]


def _record(
    db: Database, workspace_id: int, message_id: int, name: str, key: str, url: str, at: datetime
) -> None:
    with db.session() as session:
        row = session.get(EngageMessage, message_id)
        if row is None or row.workspace_id != workspace_id or row.customer_id is None:
            return  # a message since erased: nothing to attribute the event to
        profiles = repo.customer_profiles(session, workspace_id, [row.customer_id])
        properties: dict[str, object] = {"message_id": message_id, "category": row.category}
        if row.source:
            properties["source"] = row.source  # e.g. the playbook or survey that sent it
    if url:
        properties["url"] = url
    event = eventlog.track(
        profiles.get(row.customer_id), name, key, properties, at, channel="email"
    )
    eventlog.write(db, workspace_id, [event])


def record_open(db: Database, token: str, at: datetime) -> None:
    """The pixel was loaded: ``Email Opened`` (once per message; later opens add nothing)."""
    token = token.removesuffix(".gif")
    workspace_id, message_id = _verify("open", token)
    _record(db, workspace_id, message_id, OPENED, f"open-{message_id}", "", at)


def record_click(db: Database, token: str, url: str, at: datetime) -> str:
    """A tracked link was followed: ``Email Clicked``; returns where to send the reader."""
    workspace_id, message_id = _verify("click", token, url)
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    _record(db, workspace_id, message_id, CLICKED, f"click-{message_id}-{digest}", url, at)
    return url
