"""Small hand-built event logs, as Segment messages and as the lifecycle's LogEvents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clm.lifecycle.reference import LogEvent
from clm.store.engine import Database
from clm.store.workspaces import create_workspace

DAY = 86_400
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
T0 = int(EPOCH.timestamp())


def at(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def message(
    user: str,
    seconds: int,
    message_id: str,
    event: str | None = None,
    kind: str = "track",
    **properties: Any,
) -> dict[str, Any]:
    """A Segment message from ``user`` at ``EPOCH + seconds``."""
    raw: dict[str, Any] = {
        "type": kind,
        "userId": user,
        "messageId": message_id,
        "timestamp": at(seconds).isoformat(),
    }
    if kind == "track":
        raw["event"] = event
        raw["properties"] = properties
    elif kind == "page":
        raw["properties"] = properties
    elif kind == "identify":
        raw["traits"] = properties
    return raw


def as_log_events(customer_of: dict[str, int], messages: list[dict[str, Any]]) -> list[LogEvent]:
    """The reference's view of the same messages."""
    events = []
    for raw in messages:
        props = raw.get("properties", {})
        revenue = props.get("revenue")
        events.append(
            LogEvent(
                customer_id=customer_of[raw["userId"]],
                ts=int(datetime.fromisoformat(raw["timestamp"]).timestamp()),
                message_id=raw["messageId"],
                name=raw.get("event"),
                type=raw["type"],
                channel=props.get("channel"),
                revenue=float(revenue) if isinstance(revenue, int | float) else None,
                properties=props,
            )
        )
    return events


def new_workspace(db: Database, slug: str = "acme") -> int:
    with db.transaction() as session:
        return create_workspace(session, slug).id
