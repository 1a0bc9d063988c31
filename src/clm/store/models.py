"""The tables: workspaces and keys, customers and identities, and the append-only event log.

Events are never updated. Which customer an event belongs to is *derived*: an event points at
the identity it arrived with, and identities point at customers; merging two customers repoints
identities, so every earlier event follows the merged customer without touching the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend (SQLite alone would drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")
Timestamp = UtcDateTime()


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A model's Core table, typed as one (for bulk statements below the ORM)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Workspace(Base):
    """One brand or product line; every other row belongs to exactly one workspace."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class ApiKey(Base):
    """A credential, stored only as its SHA-256 digest; ``prefix`` lets people tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # write | secret | admin
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Customer(Base):
    """A person (or account) as CLM knows them; ``merged_into_id`` redirects a merged-away id.

    Activity (first and last seen, counts) is not kept here: it is derived from the events, so
    that ingestion writes a customer row only when the customer's identity changes.
    """

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    traits: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))

    __table_args__ = (
        Index("ix_customers_workspace_user", "workspace_id", "user_id"),
        Index("ix_customers_workspace_id", "workspace_id", "id"),
        Index("ix_customers_merged_into", "merged_into_id"),
    )


class Identity(Base):
    """One identifier (user id, anonymous id, email, external id) and the customer it names."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))  # user_id | anonymous_id | email | ext:<name>
    value: Mapped[str] = mapped_column(String(512))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "kind", "value", name="uq_identity"),)


class IdentityLink(Base):
    """Why an identifier belongs to a customer: the explainable record of resolution.

    ``outcome`` is ``new`` (first sight), ``attached`` (a new identifier joined a known customer),
    ``merged`` (two customers became one) or ``conflict`` (a merge our rules refused).
    """

    __tablename__ = "identity_links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    other_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))  # identify | alias | email | track | ...
    message_id: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)


class Event(Base):
    """The append-only log. ``ts`` is epoch seconds so every engine can window on it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    anonymous_id: Mapped[str | None] = mapped_column(String(255))
    timestamp: Mapped[datetime] = mapped_column(Timestamp)
    ts: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    original_timestamp: Mapped[datetime | None] = mapped_column(Timestamp)
    channel: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(255))
    revenue: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(8))
    properties: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    traits: Mapped[dict[str, Any] | None] = mapped_column(Json)

    __table_args__ = (
        UniqueConstraint("workspace_id", "message_id", name="uq_event_message"),
        Index("ix_events_workspace_ts", "workspace_id", "ts"),
    )


# --- lifecycle: stage models, stage history, health (owned by clm.lifecycle) ---------------

from sqlalchemy import Boolean, Text  # noqa: E402 - appended section of its own


class LifecycleDefinition(Base):
    """One version of a stage model or health scorecard, kept forever so old history stays
    explainable; ``kind`` is ``stages`` or ``health``; at most one active per (kind, name)."""

    __tablename__ = "lifecycle_definitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "kind", "name", "version", name="uq_lifecycle_def"),
    )


class StageTransition(Base):
    """A customer's move between stages under one model version: when, why, what caused it."""

    __tablename__ = "stage_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    definition_id: Mapped[int] = mapped_column(
        ForeignKey("lifecycle_definitions.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(128))
    cause_message_id: Mapped[str | None] = mapped_column(String(255))
    announced: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_stage_transitions_customer", "definition_id", "customer_id", "ts"),
        Index("ix_stage_transitions_ts", "definition_id", "ts"),
    )


class HealthSnapshot(Base):
    """A customer's health score and state from ``ts`` on, with each factor's contribution."""

    __tablename__ = "health_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    definition_id: Mapped[int] = mapped_column(
        ForeignKey("lifecycle_definitions.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    score: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    contributions: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    cause_message_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_health_history_customer", "definition_id", "customer_id", "ts"),
        Index("ix_health_history_ts", "definition_id", "ts"),
    )


class LifecycleRun(Base):
    """One computation (full, incremental or tick) and the last event id it has seen."""

    __tablename__ = "lifecycle_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    definition_id: Mapped[int] = mapped_column(
        ForeignKey("lifecycle_definitions.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(16))
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    customers: Mapped[int] = mapped_column(Integer)
    rows_written: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime] = mapped_column(Timestamp)
