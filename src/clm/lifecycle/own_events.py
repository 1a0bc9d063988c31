"""Which events the lifecycle leaves out of its own features: its own announcements.

The stage and health announcements (``lifecycle_stage_changed``, ``health_state_changed``) are
written by CLM on the ``system`` channel. They are known by that channel and their name, never
by a message-id prefix: a client may send any message id, and a customer's event whose id
happens to start with ``clm-lc-`` is the customer's like any other. (Other CLM writes such as
``Prediction Scored`` or a referral reward stay in: stage rules read them on purpose.)

This is the lifecycle's side of the shared "own event" definition; the three spellings below
(SQLAlchemy, Ibis, raw SQL) must say the same thing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_

from clm.store.customers import SYSTEM_CHANNEL

STAGE_EVENT = "lifecycle_stage_changed"
HEALTH_EVENT = "health_state_changed"
ANNOUNCEMENTS = (STAGE_EVENT, HEALTH_EVENT)
MODEL_EVENTS = ("Prediction Scored",)  # a model's scores, whatever their channel

# For SQL written by hand over ``events`` or ``customer_events`` (no user input inside).
NOT_ANNOUNCEMENT_SQL = (
    f"NOT (COALESCE(channel, '') = '{SYSTEM_CHANNEL}' "
    f"AND COALESCE(name, '') IN ({', '.join(repr(n) for n in ANNOUNCEMENTS)}))"
)


def is_announcement(channel: Any, name: Any) -> ColumnElement[bool]:
    """SQLAlchemy: the event is one of the lifecycle's own announcements."""
    return and_(
        func.coalesce(channel, "") == SYSTEM_CHANNEL,
        func.coalesce(name, "").in_(ANNOUNCEMENTS),
    )


def is_not_announcement(channel: Any, name: Any) -> ColumnElement[bool]:
    return not_(is_announcement(channel, name))


def ibis_not_announcement(table: Any) -> Any:
    """Ibis: the same test over a table with ``channel`` and ``name`` columns."""
    own = (table.channel.fill_null("") == SYSTEM_CHANNEL) & table.name.fill_null("").isin(
        list(ANNOUNCEMENTS)
    )
    return ~own


def is_own_event(channel: Any, name: Any) -> ColumnElement[bool]:
    """SQLAlchemy: anything CLM wrote about a customer (the ``system`` channel, or a model's
    scores), as the reports count it: not an action of the customer's."""
    return (func.coalesce(channel, "") == SYSTEM_CHANNEL) | func.coalesce(name, "").in_(
        MODEL_EVENTS
    )
