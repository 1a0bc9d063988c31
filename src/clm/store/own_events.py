"""What an event CLM wrote itself is: the one definition every reader and writer shares.

CLM writes into the event log as well as reading it: stage and health changes, prediction
scores, messages sent or blocked, rewards, referral conversions, playbooks' trait updates,
frontline notes. None of these is something the customer did, so none is ever a touchpoint
(attribution, first touch), an activity (lifecycle features, cohorts' returning customers) or
the start or end of a report's default period.

**An own event is an event on the ``system`` channel.** Every CLM writer puts its events there
(``context.channel`` or ``properties.channel``, or the column directly), and ingestion refuses
the channel from anyone else (``reserved_channel_error``): a client cannot write an event CLM
would take for its own, and a client event is never ignored for what its message id looks like
(message-id prefixes were the old test, and a customer's id may start with anything).

Readers test the channel only, never the message id: one short column, and a definition that
works for any writer. ``MODEL_EVENTS`` (a model's scores) are not touchpoints whatever their
channel, because scores may also be imported from another tool; the lifecycle still reads
them as features (P(alive)).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

OWN_CHANNEL = "system"
MODEL_EVENTS = ("Prediction Scored",)
# The lifecycle's own outputs: its inputs leave these out, or a stage change would feed the
# features that decide the next one.
STAGE_CHANGED, HEALTH_CHANGED = "lifecycle_stage_changed", "health_state_changed"
LIFECYCLE_OUTPUTS = (STAGE_CHANGED, HEALTH_CHANGED)
# The same tests as SQL text over an events table's ``channel`` and ``name`` columns.
OWN_EVENT_SQL = f"coalesce(channel, '') = '{OWN_CHANNEL}'"
LIFECYCLE_OUTPUT_SQL = (
    f"({OWN_EVENT_SQL} AND coalesce(name, '') IN ('{STAGE_CHANGED}', '{HEALTH_CHANGED}'))"
)

__all__ = [
    "HEALTH_CHANGED",
    "LIFECYCLE_OUTPUTS",
    "LIFECYCLE_OUTPUT_SQL",
    "MODEL_EVENTS",
    "OWN_CHANNEL",
    "OWN_EVENT_SQL",
    "STAGE_CHANGED",
    "is_own_event",
    "is_touchpoint",
    "own_event_clause",
    "reserved_channel_error",
]


def is_own_event(channel: str | None) -> bool:
    """True for an event CLM wrote itself (on the ``system`` channel)."""
    return channel == OWN_CHANNEL


def is_touchpoint(channel: str | None, name: str | None) -> bool:
    """True for an event the customer did: not CLM's own, not a model's score."""
    return not is_own_event(channel) and name not in MODEL_EVENTS


def own_event_clause(channel: Any) -> ColumnElement[bool]:
    """``is_own_event`` as a SQLAlchemy condition on a channel column (NULL is not own)."""
    return func.coalesce(channel, "") == OWN_CHANNEL


def reserved_channel_error(channel: str | None) -> str | None:
    """Why a message from outside CLM cannot carry this channel, or None when it may."""
    if is_own_event(channel):
        return (
            f"the channel {OWN_CHANNEL!r} is reserved for events CLM writes itself; "
            "use another channel name"
        )
    return None
