"""Turn a validated Segment message into the row the event log stores.

Three derivations live here, each as Segment documents it:
- the event time, corrected for the sender's clock skew:
  ``timestamp = receivedAt - (sentAt - originalTimestamp)`` (``originalTimestamp`` falls back to
  the ``timestamp`` the client sent, which is the same clock);
- the marketing touchpoint: ``channel`` from ``properties.channel``, else the UTM medium
  (``context.campaign.medium`` or ``utm_medium`` in ``context.page.url``), else
  ``context.channel``; ``campaign`` and ``source`` from the UTM name and source;
- revenue, from ``properties.revenue`` (Segment's e-commerce spec) else ``properties.total``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from clm.ingest.schemas import Alias, AnyMessage, Group, Identify, Page, Screen, Track


@dataclass(slots=True)
class EventRecord:
    """A message ready to store, with the identifiers identity resolution needs."""

    message_id: str
    type: str
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    received_at: datetime
    sent_at: datetime | None
    original_timestamp: datetime | None
    channel: str | None
    campaign: str | None
    source: str | None
    revenue: float | None
    currency: str | None
    properties: dict[str, Any]
    context: dict[str, Any]
    traits: dict[str, Any] | None
    email: str | None = None
    previous_id: str | None = None
    external_ids: list[tuple[str, str]] = field(default_factory=list)
    # The event columns after workspace and identity, as one driver takes them
    # (``clm.ingest.service.prepare_stored``): prepared where the record is parsed, off the
    # writer's path.
    stored: tuple[Any, ...] | None = None

    @property
    def ts(self) -> int:
        return int(self.timestamp.timestamp())

    def __reduce__(self) -> tuple[Any, ...]:
        """To the writer process: the prepared columns and what identity resolution reads.
        The dicts the columns were made from stay behind (pickling them cost more than
        storing them)."""
        if self.stored is None:
            raise TypeError("prepare the stored columns before sending a record")
        traits = self.traits if self.type == "identify" else None
        return _from_wire, (
            self.stored, self.message_id, self.type, self.user_id, self.anonymous_id,
            self.timestamp, traits, self.email, self.previous_id, self.external_ids,
        )  # fmt: skip


def _from_wire(
    stored: tuple[Any, ...],
    message_id: str,
    kind: str,
    user_id: str | None,
    anonymous_id: str | None,
    timestamp: datetime,
    traits: dict[str, Any] | None,
    email: str | None,
    previous_id: str | None,
    external_ids: list[tuple[str, str]],
) -> EventRecord:
    return EventRecord(
        message_id, kind, None, user_id, anonymous_id, timestamp, timestamp, None, None, None,
        None, None, None, None, {}, {}, traits, email, previous_id, external_ids, stored,
    )  # fmt: skip


def content_message_id(raw: dict[str, Any]) -> str:
    """A stable id for a message sent without one, so that its retries are still deduplicated.

    The ``clm-`` prefix is kept for events CLM writes itself (stage changes, predictions).
    """
    digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"auto-{digest[:40]}"


def event_time(
    message: AnyMessage, received_at: datetime, batch_sent_at: datetime | None
) -> tuple[datetime, datetime | None, datetime | None]:
    """(timestamp, sentAt, originalTimestamp) with the sender's clock skew removed."""
    original = message.original_timestamp or message.timestamp
    sent_at = message.sent_at or batch_sent_at
    if original is not None and sent_at is not None:
        return received_at - (sent_at - original), sent_at, original
    if original is not None:
        return original, sent_at, original
    return received_at, sent_at, None


def _utm_from_url(context: dict[str, Any]) -> dict[str, str]:
    page = context.get("page")
    url = page.get("url") if isinstance(page, dict) else None
    if not isinstance(url, str) or "utm_" not in url:
        return {}
    return _utm_query(url)


@lru_cache(maxsize=4096)
def _utm_query(url: str) -> dict[str, str]:
    # Cached: a campaign's landing URL repeats across thousands of visitors.
    query = parse_qs(urlsplit(url).query)
    return {key[4:]: values[0] for key, values in query.items() if key.startswith("utm_")}


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = (value if type(value) is str else str(value)).strip()
    return text[:limit] or None


def touchpoint(
    properties: dict[str, Any], context: dict[str, Any]
) -> tuple[str | None, str | None, str | None]:
    """(channel, campaign, source) of a message, as documented in the module docstring."""
    campaign_ctx = context.get("campaign")
    utm: dict[str, Any] = campaign_ctx if isinstance(campaign_ctx, dict) else {}
    if not utm:
        utm = _utm_from_url(context)
    channel = (
        _text(properties.get("channel"), 64)
        or _text(utm.get("medium"), 64)
        or _text(context.get("channel"), 64)
    )
    campaign = _text(utm.get("name") or utm.get("campaign"), 255)
    if campaign is None and properties:
        campaign = _text(properties.get("campaign"), 255)
    return channel, campaign, _text(utm.get("source"), 255)


class FieldValueError(ValueError):
    """A value of one field that cannot be stored; ``loc`` names the field."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _revenue(properties: dict[str, Any]) -> tuple[float | None, str | None]:
    for key in ("revenue", "total"):
        value = properties.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            amount = float(value)
        elif isinstance(value, str):
            try:
                amount = float(value)
            except ValueError:
                return None, None
        else:
            continue
        if not math.isfinite(amount):  # "Infinity", "-1e309", "NaN": no sum survives them
            raise FieldValueError(("properties", key), "must be a finite number")
        return amount, _text(properties.get("currency"), 8)
    return None, None


def _context_traits(context: dict[str, Any]) -> dict[str, Any]:
    traits = context.get("traits")
    return dict(traits) if isinstance(traits, dict) else {}


def _email(traits: Any) -> str | None:
    """The email of traits (or of anything else: ``None``), lower-cased."""
    if not traits or not isinstance(traits, dict):
        return None
    email = traits.get("email")
    if isinstance(email, str) and "@" in email:
        return email.strip().lower()[:320]
    return None


def _external_ids(context: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    listed = context.get("externalIds")
    if not listed:
        return found
    for item in listed:
        if isinstance(item, dict) and item.get("id") is not None and item.get("type"):
            found.append((f"ext:{str(item['type'])[:59]}", str(item["id"])[:512]))
    return found


def to_record(
    message: AnyMessage,
    raw: dict[str, Any],
    received_at: datetime,
    batch_sent_at: datetime | None = None,
    batch_context: dict[str, Any] | None = None,
) -> EventRecord:
    """The stored form of one validated message."""
    context = {**batch_context, **message.context} if batch_context else message.context
    timestamp, sent_at, original = event_time(message, received_at, batch_sent_at)
    properties: dict[str, Any] = {}
    traits: dict[str, Any] | None = None
    name: str | None = None
    previous_id: str | None = None
    if isinstance(message, Track):
        properties, name = message.properties, message.event
    elif isinstance(message, Page):
        properties, name = message.properties, message.name
        if message.category:
            properties = {**properties, "category": message.category}
    elif isinstance(message, Screen):
        properties, name = message.properties, message.name
    elif isinstance(message, Identify):
        # RudderStack's SDKs send identify traits only in ``context.traits``; RudderStack
        # reads them from there when the message has none of its own, and so does CLM.
        traits = message.traits or _context_traits(context)
    elif isinstance(message, Group):
        traits, properties = message.traits, {"groupId": message.group_id}
    elif isinstance(message, Alias):
        previous_id = message.previous_id
        properties = {"previousId": previous_id}
    context_traits = context.get("traits")
    channel, campaign, source = touchpoint(properties, context)
    revenue, currency = _revenue(properties)
    return EventRecord(
        message_id=message.message_id or content_message_id(raw),
        type=message.type,
        name=name,
        user_id=message.user_id,
        anonymous_id=message.anonymous_id,
        timestamp=timestamp,
        received_at=received_at,
        sent_at=sent_at,
        original_timestamp=original,
        channel=channel,
        campaign=campaign,
        source=source,
        revenue=revenue,
        currency=currency,
        properties=properties,
        context=context,
        traits=traits,
        email=_email(traits if isinstance(message, Identify) else None) or _email(context_traits),
        previous_id=previous_id,
        external_ids=_external_ids(context),
    )
