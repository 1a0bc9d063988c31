"""Public shapes of stored things: the API and the Python API return these, never ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class WorkspacePublic(_Public):
    id: int
    slug: str
    name: str
    created_at: datetime


class ApiKeyPublic(_Public):
    id: int
    kind: str
    name: str
    prefix: str
    workspace_id: int | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class IdentityPublic(_Public):
    kind: str
    value: str
    first_seen_at: datetime


class IdentityLinkPublic(_Public):
    """One step of identity resolution, told as it happened."""

    kind: str
    value: str
    outcome: str
    reason: str
    other_customer_id: int | None
    message_id: str | None
    occurred_at: datetime


class CustomerPublic(_Public):
    """A customer; ``first_seen_at``/``last_seen_at``/``event_count`` come from their events."""

    id: int
    user_id: str | None
    email: str | None
    traits: dict[str, Any]
    created_at: datetime
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    event_count: int = 0


class CustomerDetail(CustomerPublic):
    identities: list[IdentityPublic]
    resolution: list[IdentityLinkPublic]
    merged_ids: list[int]


class EventPublic(_Public):
    id: int
    customer_id: int
    message_id: str
    type: str
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    received_at: datetime
    channel: str | None
    campaign: str | None
    source: str | None
    revenue: float | None
    currency: str | None
    properties: dict[str, Any]
    context: dict[str, Any]
    traits: dict[str, Any] | None


class Page(BaseModel, Generic[T]):
    """A page of results; pass ``next_after`` back as ``after`` for the next one."""

    items: list[T]
    next_after: int | None


class WorkspaceStats(BaseModel):
    """Head counts of a workspace (customers are counted after merges; ``events`` are the
    customers' touchpoints, ``system_events`` what CLM recorded about them)."""

    customers: int
    identified_customers: int
    events: int
    system_events: int
    events_by_type: dict[str, int]
    events_by_channel: dict[str, int]
    purchases: int
    revenue: float
    first_event_at: datetime | None
    last_event_at: datetime | None
