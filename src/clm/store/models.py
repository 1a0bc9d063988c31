"""The tables: workspaces and keys, customers and identities, and the append-only event log.

Events are never updated. Which customer an event belongs to is *derived*: an event points at
the identity it arrived with, and identities point at customers; merging two customers repoints
identities, so every earlier event follows the merged customer without touching the log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
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
    text,
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
    kind: Mapped[str] = mapped_column(String(16))  # write | read | manage | secret | admin
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Scoped keys (clm.accounts): an optional end of validity, and when the key was last seen
    # (refreshed at most once a minute, so ingestion does not write a row per request).
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)


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


EVENT_KIND_INDEXES = {
    "ix_events_survey_answers": text("name = 'survey_answered'"),
    "ix_events_referral_clicks": text("name = 'Referral Link Clicked'"),
}
SURVEY_ANSWERS = EVENT_KIND_INDEXES["ix_events_survey_answers"]


class Event(Base):
    """The append-only log. ``ts`` is epoch seconds so every engine can window on it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"))
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
        # A customer's events (by identity), and those of one name in a time range from the
        # index alone: a playbook report's goal within each journey's window.
        Index("ix_events_identity_name_ts", "identity_id", "name", "ts"),
        # Partial indexes for the engagement console's reads of two rare event kinds (a
        # survey's answers, referral link clicks): without them each read scans the whole
        # log; partial, so ingesting every other event pays nothing for them.
        *(
            Index(name, "workspace_id", "ts", sqlite_where=where, postgresql_where=where)
            for name, where in EVENT_KIND_INDEXES.items()
        ),
        # The survey answers past a cursor (``clm.engage.surveys.stored_answers``), by id.
        Index(
            "ix_events_survey_answer_ids",
            "workspace_id",
            "id",
            sqlite_where=SURVEY_ANSWERS,
            postgresql_where=SURVEY_ANSWERS,
        ),
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


# --- engage: messages, surveys, playbooks, referrals, ledger, testimonials (clm.engage) ------


class EngageConfig(Base):
    """One piece of a workspace's engagement set-up: a channel's provider (``kind`` channel),
    the guardrail policy, the referral or loyalty program. Secrets live in ``config`` and are
    never returned by the API nor logged."""

    __tablename__ = "engage_config"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "kind", "name", name="uq_engage_config"),)


class EngageConsent(Base):
    """Whether a customer agreed to hear from us on a channel for a purpose."""

    __tablename__ = "engage_consents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))  # marketing | transactional
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint(
            "workspace_id", "customer_id", "channel", "purpose", name="uq_engage_consent"
        ),
    )


class EngageSuppression(Base):
    """An address we must not write to on a channel (unsubscribed, bounced, complained)."""

    __tablename__ = "engage_suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "channel", "address", name="uq_engage_suppression"),
    )


class EngageMessage(Base):
    """The outbox: a message decided (or blocked, with the reason) in the same transaction as
    the decision; the worker delivers it at least once under ``idempotency_key``."""

    __tablename__ = "engage_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(16))  # pending|held|sending|sent|blocked|dead
    reason: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(160), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key", name="uq_engage_message_key"),
        Index("ix_engage_messages_due", "status", "next_attempt_at"),
        Index("ix_engage_messages_customer", "workspace_id", "customer_id", "channel"),
    )


class EngageToken(Base):
    """A signed link we issued (survey answer, testimonial form): makes it single-use."""

    __tablename__ = "engage_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128), default="")
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    issued_at: Mapped[datetime] = mapped_column(Timestamp)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index("ix_engage_tokens_subject", "workspace_id", "purpose", "customer_id", "issued_at"),
        # A survey's "asked" count (its results): the links issued for it.
        Index("ix_engage_tokens_survey", "workspace_id", "purpose", "subject"),
    )


class EngageSurvey(Base):
    """An NPS, CSAT, CES or custom survey: questions, schedule, triggers, follow-up rules."""

    __tablename__ = "engage_surveys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "key", name="uq_engage_survey"),)


class SurveyAnswer(Base):
    """Each survey response's latest answer: the score of its latest revision that has one,
    the comment (and its sentiment) of its latest revision that has one, so a survey's results
    are an indexed aggregate instead of a pass over every revision in the log.

    Derived (``clm.engage.surveys.stored_answers``) from the ``survey_answered`` events, up to
    the event id of its cursor; ``response_key`` is ``r:<response_id>`` (``m:<message_id>``
    for an answer without one). The revision, time and message id of each half are its rank:
    a revision arriving late replaces the stored one only when it ranks higher. ``identity_id``
    (not the customer) so a merge is followed at read time, as the log's events follow it.
    """

    __tablename__ = "survey_answers"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    survey_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    response_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"))
    score: Mapped[int | None] = mapped_column(Integer)
    score_ts: Mapped[int | None] = mapped_column(BigInteger)
    score_revision: Mapped[int | None] = mapped_column(Integer)
    score_message_id: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    sentiment: Mapped[float | None] = mapped_column(Float)
    comment_ts: Mapped[int | None] = mapped_column(BigInteger)
    comment_revision: Mapped[int | None] = mapped_column(Integer)
    comment_message_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        # The results: per day and score, read from the index alone.
        Index("ix_survey_answers_scores", "workspace_id", "survey_key", "score_ts", "score"),
        # The comments, newest first, paged.
        Index("ix_survey_answers_comments", "workspace_id", "survey_key", "comment_ts"),
        Index("ix_survey_answers_identity", "identity_id"),  # erasure, the FK's deletes
    )


class EngageTask(Base):
    """Work for a person: a detractor to call back, a journey step that needs a human."""

    __tablename__ = "engage_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    dedupe_key: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "dedupe_key", name="uq_engage_task"),)


class EngagePlaybook(Base):
    """One version of a playbook (trigger + steps); journeys keep the version they began on."""

    __tablename__ = "engage_playbooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # The YAML this version was saved as (comments and layout kept): NULL for a version saved
    # as JSON or stored before 0025, whose YAML is rebuilt from ``definition``.
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # active | paused | retired
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "name", "version", name="uq_engage_playbook"),
    )


class EngageJourney(Base):
    """A customer's way through one playbook: where they are, until when they wait."""

    __tablename__ = "engage_journeys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    playbook_id: Mapped[int] = mapped_column(BigInteger)
    playbook_name: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    arm: Mapped[str] = mapped_column(String(16))  # treatment | control
    variant: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))  # active | waiting | completed | exited
    wake_at: Mapped[datetime | None] = mapped_column(Timestamp)
    wait_event: Mapped[str | None] = mapped_column(String(255))
    enrolled_at: Mapped[datetime] = mapped_column(Timestamp)
    enrolled_ts: Mapped[int] = mapped_column(BigInteger)
    trigger_message_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # The goal outcome, kept by ``clm.engage.playbooks.outcomes``: for which version of the
    # playbook's goal (``EngagePlaybookGoal.version``; NULL: not yet observed), when it was
    # first reached inside the window (NULL: not reached) and by what: the goal event's
    # ``events.id``, or the goal stage entry's ``stage_transitions.id``.
    goal_version: Mapped[int | None] = mapped_column(Integer)
    goal_ts: Mapped[int | None] = mapped_column(BigInteger)
    goal_source_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_engage_journeys_customer", "workspace_id", "playbook_name", "customer_id"),
        Index("ix_engage_journeys_due", "workspace_id", "state", "wake_at"),
        # One playbook's journeys by state, next to wake first (the console's journeys in
        # flight: counts per state and a page, without reading every journey row)
        Index(
            "ix_engage_journeys_playbook_state", "workspace_id", "playbook_name", "state", "wake_at"
        ),
        # The playbook report reads this index alone (its group order, no table row), and the
        # goal observer finds the journeys not yet observed under the current goal by its prefix.
        Index(
            "ix_engage_journeys_goal",
            "workspace_id",
            "playbook_name",
            "goal_version",
            "arm",
            "variant",
            "state",
            "goal_ts",
        ),
    )


class EngagePlaybookGoal(Base):
    """How far a playbook's goal outcomes are observed: the goal definition they answer (its
    ``goal_key``, numbered by ``version``) and the log read so far: events, stage transitions
    and identity links (merges) up to these ids."""

    __tablename__ = "engage_playbook_goals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    playbook_name: Mapped[str] = mapped_column(String(64))
    goal_key: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    event_cursor: Mapped[int] = mapped_column(BigInteger)
    transition_cursor: Mapped[int] = mapped_column(BigInteger)
    link_cursor: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("workspace_id", "playbook_name", name="uq_engage_playbook_goal"),
    )


class EngageJourneyLog(Base):
    """Journey history: each step a customer took, when, and why."""

    __tablename__ = "engage_journey_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(BigInteger, index=True)
    step: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(512), default="")
    at: Mapped[datetime] = mapped_column(Timestamp)


class EngageCursor(Base):
    """How far an engagement consumer (triggers, referrals, loyalty) has read the event log."""

    __tablename__ = "engage_cursors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    consumer: Mapped[str] = mapped_column(String(64))
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (UniqueConstraint("workspace_id", "consumer", name="uq_engage_cursor"),)


class EngageReferralCode(Base):
    __tablename__ = "engage_referral_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "code", name="uq_engage_referral_code"),
        UniqueConstraint("workspace_id", "customer_id", name="uq_engage_referral_owner"),
    )


class EngageReferral(Base):
    """A referred customer, who referred them, and every check behind the decision."""

    __tablename__ = "engage_referrals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    referrer_id: Mapped[int] = mapped_column(BigInteger)
    referee_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # attributed|qualified|review|rewarded|...
    checks: Mapped[list[Any]] = mapped_column(Json, default=list)
    attributed_message_id: Mapped[str | None] = mapped_column(String(255))
    qualifying_message_id: Mapped[str | None] = mapped_column(String(255))
    qualified_at: Mapped[datetime | None] = mapped_column(Timestamp)
    reward_due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    rewarded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "referee_id", name="uq_engage_referee"),)


class EngageLedgerEntry(Base):
    """Double-entry points ledger: every transaction's entries add up to zero; append-only."""

    __tablename__ = "engage_ledger"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    txn_id: Mapped[str] = mapped_column(String(160))
    account: Mapped[str] = mapped_column(String(64))  # customer:<id> | program:<name>
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # earn | redeem | expire | reward
    memo: Mapped[str] = mapped_column(String(255), default="")
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "txn_id", "account", name="uq_engage_ledger"),
        Index("ix_engage_ledger_customer", "workspace_id", "customer_id"),
    )


class EngageCoupon(Base):
    __tablename__ = "engage_coupons"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # percent | amount
    value: Mapped[float] = mapped_column(Float)
    min_order: Mapped[float] = mapped_column(Float, default=0.0)
    max_redemptions: Mapped[int] = mapped_column(Integer, default=1)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    source: Mapped[str] = mapped_column(String(160), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "code", name="uq_engage_coupon"),)


class EngageCouponRedemption(Base):
    __tablename__ = "engage_coupon_redemptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    coupon_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[str] = mapped_column(String(255))
    discount: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("coupon_id", "order_id", name="uq_engage_redemption"),)


class EngageTestimonial(Base):
    __tablename__ = "engage_testimonials"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    brand: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(128))
    consent: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected
    review_note: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    reviewed_at: Mapped[datetime | None] = mapped_column(Timestamp)


# --- predictions: BTYD / sBG fits (owned by clm.predictions) --------------------------------


class PredictionFit(Base):
    """One model fit of a workspace's purchase history: what was fitted, how well, on what.

    The per-customer scores it produced are ``Prediction Scored`` events in the log, whose
    ``message_id`` carries this ``fit_id``; this row keeps the parameters and diagnostics that
    explain them.
    """

    __tablename__ = "prediction_fits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    fit_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    standard_errors: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    log_likelihood: Mapped[float] = mapped_column(Float)
    n_customers: Mapped[int] = mapped_column(Integer)
    calibration_end: Mapped[datetime] = mapped_column(Timestamp)
    as_of: Mapped[datetime] = mapped_column(Timestamp)
    holdout: Mapped[dict[str, Any] | None] = mapped_column(Json)
    diagnostics: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "fit_id", name="uq_prediction_fit"),
        Index("ix_prediction_fits_workspace_created", "workspace_id", "created_at"),
    )


# --- analytics: marketing spend (owned by clm.analytics) -------------------------------------


class MarketingSpend(Base):
    """What was spent on one channel (and optionally campaign) over ``[period_start, period_end)``;
    imported from CSV, read by the acquisition economics report."""

    __tablename__ = "marketing_spend"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    campaign: Mapped[str] = mapped_column(String(255), default="")
    period_start: Mapped[int] = mapped_column(BigInteger)
    period_end: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(8), default="")
    imported_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("workspace_id", "channel", "campaign", "period_start", "period_end",
                         name="uq_marketing_spend"),
    )  # fmt: skip


# --- health: current scores (owned by clm.lifecycle) ------------------------------------------


class HealthScore(Base):
    """A customer's current health as of ``scored_at``, and ``next_due``: the first instant at
    which the score would change by the passing of time alone (None: never, until an event).
    The live loop re-scores customers touched by events or due; history is ``health_history``."""

    __tablename__ = "health_scores"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    definition_id: Mapped[int] = mapped_column(
        ForeignKey("lifecycle_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scored_at: Mapped[int] = mapped_column(BigInteger)
    score: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    contributions: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    next_due: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_health_scores_due", "definition_id", "next_due"),)


# --- accounts: people, their sessions and roles, and the audit log (owned by clm.accounts) ---


class User(Base):
    """A person who signs in; ``password_hash`` is argon2id (``None``: no password set yet)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    disabled_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Membership(Base):
    """A user's role in one workspace: owner, admin, marketer, customer_success or viewer."""

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("user_id", "workspace_id", name="uq_membership"),)


class UserSession(Base):
    """A signed-in browser: the cookie's SHA-256, its CSRF token, the workspace it works in."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="SET NULL")
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)


class LoginFailure(Base):
    """One failed sign-in; counted per email and per client address for rate limiting and
    lockout, in the database so that every server process sees the same count."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        Index("ix_login_failures_email_at", "email", "at"),
        Index("ix_login_failures_client_at", "client", "at"),
    )


class PasswordReset(Base):
    """A password-reset link: only the SHA-256 of its token is kept; used once, then dead."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp)


class AuditRecord(Base):
    """One change: who (user or key), when, what, to what, and the state before and after.

    Append-only: no code path updates or deletes a row, and on PostgreSQL and SQLite a trigger
    refuses UPDATE and DELETE. No foreign keys, so the record outlives what it names.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(Timestamp)
    actor: Mapped[str] = mapped_column(String(320))
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_key_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    before: Mapped[Any | None] = mapped_column(Json)
    after: Mapped[Any | None] = mapped_column(Json)

    __table_args__ = (Index("ix_audit_log_workspace_id", "workspace_id", "id"),)


# --- privacy: tombstones and consent history (owned by clm.privacy) -------------------------


class Tombstone(Base):
    """What is left of an erased person: a keyed hash (HMAC-SHA256 with a server secret) of
    each identifier they had, so ingestion can refuse the same ids later without keeping them."""

    __tablename__ = "privacy_tombstones"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "digest", name="uq_privacy_tombstone"),)


class ConsentRecord(Base):
    """One consent decision, kept forever (until erasure): per channel and purpose, when, from
    where, and the text the person agreed to; ``engage_consents`` holds only the latest."""

    __tablename__ = "privacy_consent_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_privacy_consent_customer", "workspace_id", "customer_id"),)


# --- saved segments: named customer filters and their size over time (clm.lifecycle) --------

from sqlalchemy import Date  # noqa: E402 - appended section of its own


class Segment(Base):
    """A named, saved filter of the customer list: ``conditions`` in the one condition language
    (``clm.lifecycle.conditions``) that playbook triggers and report filters also read.
    ``history_from`` is the first day of ``segment_sizes``; ``backfilled`` says whether the days
    before the segment was saved were worked out exactly from the stage and health history."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    history_from: Mapped[date | None] = mapped_column(Date)
    backfilled: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_segments_name"),)


class SegmentSize(Base):
    """How many customers a segment had at the end of ``day`` (UTC); a backfilled history keeps
    only the days the size changed, the live loop records one row a day from the save on."""

    __tablename__ = "segment_sizes"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)


# --- current state: one derived row per customer (owned by clm.lifecycle.current_state) -----


class CustomerState(Base):
    """Where a customer stands now, stored so that lists filter, sort and count on an index.

    A cache derived from the log (recomputable at any time by ``rebuild_state``), never a
    second truth: each row names the stage model and scorecard versions and the prediction fit
    that produced it. Times are epoch seconds; ``revenue`` sums finite amounts only.
    """

    __tablename__ = "customer_states"

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    stage: Mapped[str | None] = mapped_column(String(64))
    stage_since: Mapped[int | None] = mapped_column(BigInteger)
    stage_definition_id: Mapped[int | None] = mapped_column(BigInteger)
    health_state: Mapped[str | None] = mapped_column(String(16))
    health_score: Mapped[float | None] = mapped_column(Float)
    health_definition_id: Mapped[int | None] = mapped_column(BigInteger)
    first_seen_ts: Mapped[int | None] = mapped_column(BigInteger)
    last_seen_ts: Mapped[int | None] = mapped_column(BigInteger)
    purchases: Mapped[int] = mapped_column(Integer, default=0)
    revenue: Mapped[float] = mapped_column(Float, default=0.0)
    last_purchase_ts: Mapped[int | None] = mapped_column(BigInteger)
    p_alive: Mapped[float | None] = mapped_column(Float)
    clv_12m: Mapped[float | None] = mapped_column(Float)
    expected_purchases_90d: Mapped[float | None] = mapped_column(Float)
    prediction_fit_id: Mapped[str | None] = mapped_column(String(64))
    rfm_segment: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # User id, email and name trait, lower-cased: the list's search scans this one column.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")

    # One index per sort key of the customer list (and per filter that counts), each ending in
    # the id so a page is a range of the index.
    __table_args__ = (
        Index("ix_customer_states_id", "workspace_id", "customer_id"),
        Index("ix_customer_states_stage", "workspace_id", "stage", "customer_id"),
        Index("ix_customer_states_health_state", "workspace_id", "health_state", "customer_id"),
        Index("ix_customer_states_health_score", "workspace_id", "health_score", "customer_id"),
        Index("ix_customer_states_last_seen", "workspace_id", "last_seen_ts", "customer_id"),
        Index("ix_customer_states_p_alive", "workspace_id", "p_alive", "customer_id"),
        Index("ix_customer_states_clv", "workspace_id", "clv_12m", "customer_id"),
        Index("ix_customer_states_rfm", "workspace_id", "rfm_segment", "customer_id"),
        Index("ix_customer_states_revenue", "workspace_id", "revenue", "customer_id"),
        Index("ix_customer_states_purchases", "workspace_id", "purchases", "customer_id"),
        # A search (``LIKE '%text%'``) scans this narrow index instead of the wide rows.
        Index("ix_customer_states_search", "workspace_id", "search_text", "customer_id"),
    )


from sqlalchemy.sql import column as sql_column  # noqa: E402 - appended section of its own
from sqlalchemy.sql import table as sql_table  # noqa: E402

# The customer list's trigram search index on SQLite: an FTS5 table (not a model: Alembic and
# the models know no virtual tables) over ``customer_states.search_text``, rowid = customer id,
# kept by the triggers migration 0021 creates. PostgreSQL has no such table.
SEARCH_INDEX = sql_table(
    "customer_search", sql_column("rowid", BigInteger), sql_column("search_text", Text)
)
SQLITE_ONLY_TABLES = ("customer_search",)  # and FTS5's shadow tables, customer_search_*


class EventCount(Base):
    """How many events of one type on one channel a workspace has, with their purchases and
    revenue and first and last times: the workspace's head counts without scanning the log.
    Derived (``clm.lifecycle.event_counts``), kept by the same refresh as ``customer_states``;
    ``channel`` is ``""`` for events without one."""

    __tablename__ = "event_counts"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    purchases: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue: Mapped[float] = mapped_column(Float, default=0.0)
    first_ts: Mapped[int | None] = mapped_column(BigInteger)
    last_ts: Mapped[int | None] = mapped_column(BigInteger)


# --- stored readings of the overview (owned by clm.analytics.kept) --------------------------


class OverviewReading(Base):
    """One stored reading of an overview aggregate (a funnel, a retention trend, the stage and
    health histories' daily changes, ...) or of a report, so a freshly started server answers
    at once.

    A cache with a version, never a second truth: ``version`` holds the cheap facts about the
    inputs (newest row ids, counts, definition ids) read before the computation, so a reader
    can tell whether the data moved since; ``params`` is the reading's canonical JSON key.
    """

    __tablename__ = "overview_readings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(Timestamp)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("workspace_id", "kind", "params", name="uq_overview_readings"),
    )


class Job(Base):
    """A slow read run in the background (a health backtest, a first preview): the page asks
    for it, gets the id at once and polls this row for progress and the result. One row per
    distinct request (``key``: a digest of its kind and parameters), so identical requests share
    it; a rerun (after a failure, or once its answer is old) reuses the row."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(String(255))
    result: Mapped[dict[str, Any] | None] = mapped_column(Json)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("workspace_id", "kind", "key", name="uq_jobs_request"),)
