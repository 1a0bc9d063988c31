"""Writing engagement back to the event log, through ingestion (dedupe, identity resolution).

Message ids are deterministic (``clm-engage-<what>-<id>``): writing the same fact twice, as
at-least-once delivery may, stores it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from clm.ingest import IngestResult, ingest
from clm.store.engine import Database
from clm.store.own_events import OWN_CHANNEL

PREFIX = "clm-engage-"
_CHUNK = 2_000
# What CLM did, not what the customer did: on the `system` channel, so that lifecycle features
# and analytics do not count it as the customer's activity (a sent email is not an opened one).
# A referral's conversion is CLM's reading of the referee's purchase (the purchase is theirs).
SYSTEM_EVENTS = frozenset(
    {"Email Sent", "SMS Sent", "Webhook Delivered", "Message Blocked", "Reward Granted",
     "Referral Converted"}
)  # fmt: skip


def track(
    profile: dict[str, Any] | None,
    name: str,
    message_id: str,
    properties: dict[str, Any],
    at: datetime | None = None,
    *,
    channel: str | None = None,
) -> dict[str, Any] | None:
    """A Segment track message for a customer known by user id or anonymous id; None if the
    customer has neither (nothing to attribute the event to)."""
    if profile is None:
        return None
    who: dict[str, Any] = {}
    if profile.get("user_id"):
        who["userId"] = profile["user_id"]
    elif profile.get("anonymous_id"):
        who["anonymousId"] = profile["anonymous_id"]
    else:
        return None
    if name in SYSTEM_EVENTS:
        properties = dict(properties)
        if "channel" in properties:
            properties["message_channel"] = properties.pop("channel")
        properties["channel"] = OWN_CHANNEL
    message: dict[str, Any] = {
        "type": "track",
        "event": name,
        "messageId": f"{PREFIX}{message_id}",
        "timestamp": (at or datetime.now(UTC)).isoformat(),
        "properties": properties,
        "context": {"library": {"name": "clm-engage"}},
        **who,
    }
    if channel:
        message["context"]["channel"] = channel
    return message


def write(db: Database, workspace_id: int, messages: Sequence[dict[str, Any] | None]) -> int:
    """Ingest the messages (Nones skipped); returns how many were new."""
    batch = [m for m in messages if m is not None]
    stored = 0
    for start in range(0, len(batch), _CHUNK):
        result: IngestResult = ingest(db, workspace_id, batch[start : start + _CHUNK], own=True)
        stored += result.stored
    return stored
