"""A workspace's head counts (events by type and channel, purchases, revenue, first and last
event) from a stored tally instead of a scan of the log.

``event_counts`` holds one row per (type, channel) with its events, purchases, finite revenue
and first and last times, up to the event id of the ``customer_states`` cursor: the same refresh
(``clm.lifecycle.current_state``) adds the events it reads, and a rebuild recounts them all. A
read adds the events past the cursor itself (a range of the primary key), so the counts are
exact at every moment, as the full scan (``clm.store.customers.workspace_stats``) is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from clm.store.engine import Database
from clm.store.models import Customer, EngageCursor, Event, EventCount
from clm.store.own_events import OWN_CHANNEL
from clm.store.schemas import WorkspaceStats

PURCHASE = "Order Completed"
# Cursors in ``engage_cursors`` (a workspace's named integers) shared with ``current_state``:
# how far the stored rows and these counts have read the log, and the version of the code's
# definitions they were computed under (0: never built, or invalidated by a deletion).
EVENTS_CURSOR, VERSION_CURSOR = "state.events", "state.version"
STATE_VERSION = 2


@dataclass
class Tally:
    events: int = 0
    purchases: int = 0
    revenue: float = 0.0
    first_ts: int | None = None
    last_ts: int | None = None

    def add(self, other: Tally) -> None:
        self.events += other.events
        self.purchases += other.purchases
        self.revenue += other.revenue
        self.first_ts = _least(self.first_ts, other.first_ts)
        self.last_ts = _greatest(self.last_ts, other.last_ts)


def _least(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _finite(amount: Any) -> Any:
    return case((amount.between(-sys.float_info.max, sys.float_info.max), amount), else_=None)


def tally_events(
    session: Session, workspace_id: int, after: int, upto: int | None
) -> dict[tuple[str, str], Tally]:
    """The events of ids in ``(after, upto]`` (``upto`` None: to the end), per type and channel
    (the refresh reads it before its write transaction: a rebuild's is a scan of the log)."""
    bought = Event.name == PURCHASE
    where = [Event.workspace_id == workspace_id, Event.id > after]
    if upto is not None:
        where.append(Event.id <= upto)
    channel = func.coalesce(Event.channel, "")
    rows = session.execute(
        select(
            Event.type,
            channel,
            func.count(),
            func.sum(case((bought, 1), else_=0)),
            func.sum(case((bought, _finite(Event.revenue)), else_=None)),
            func.min(Event.ts),
            func.max(Event.ts),
        )
        .where(*where)
        .group_by(Event.type, channel)
    )
    return {
        (str(kind), str(chan)): Tally(
            int(n), int(bought_n or 0), float(revenue or 0.0), first, last
        )
        for kind, chan, n, bought_n, revenue, first, last in rows
    }


def store_tally(
    session: Session, workspace_id: int, tally: dict[tuple[str, str], Tally], *, replace: bool
) -> None:
    """Add ``tally`` to the stored counts, or make it the counts (``replace``: a rebuild), in
    the refresh's transaction that moves the cursor past those events."""
    if replace:
        session.execute(delete(EventCount).where(EventCount.workspace_id == workspace_id))
        session.flush()
    for (kind, channel), new in tally.items():
        row = session.get(EventCount, (workspace_id, kind, channel))
        if row is None:
            session.add(EventCount(
                workspace_id=workspace_id, type=kind, channel=channel, events=new.events,
                purchases=new.purchases, revenue=new.revenue, first_ts=new.first_ts,
                last_ts=new.last_ts,
            ))  # fmt: skip
            continue
        total = Tally(row.events, row.purchases, row.revenue, row.first_ts, row.last_ts)
        total.add(new)
        row.events, row.purchases, row.revenue = total.events, total.purchases, total.revenue
        row.first_ts, row.last_ts = total.first_ts, total.last_ts
    session.flush()


def _stored(session: Session, workspace_id: int) -> tuple[dict[tuple[str, str], Tally], int]:
    marks = dict(
        session.execute(
            select(EngageCursor.consumer, EngageCursor.last_event_id).where(
                EngageCursor.workspace_id == workspace_id,
                EngageCursor.consumer.in_([EVENTS_CURSOR, VERSION_CURSOR]),
            )
        ).all()
    )
    done = marks.get(EVENTS_CURSOR)
    if done is None or marks.get(VERSION_CURSOR) != STATE_VERSION:
        return {}, 0  # never counted, or stale: the whole log is the tail
    rows = session.scalars(select(EventCount).where(EventCount.workspace_id == workspace_id))
    return {
        (r.type, r.channel): Tally(r.events, r.purchases, r.revenue, r.first_ts, r.last_ts)
        for r in rows
    }, int(done)


def _merged(parts: Iterable[dict[tuple[str, str], Tally]]) -> dict[tuple[str, str], Tally]:
    out: dict[tuple[str, str], Tally] = {}
    for part in parts:
        for key, tally in part.items():
            out.setdefault(key, Tally()).add(tally)
    return out


def _stamp(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def workspace_stats(db: Database, workspace_id: int) -> WorkspaceStats:
    """The workspace's head counts: the stored tally plus the events past it, and the customers
    (after merges) and how many of them are identified."""
    with db.session() as session:
        stored, done = _stored(session, workspace_id)
        groups = _merged([stored, tally_events(session, workspace_id, done, None)])
        live = (Customer.workspace_id == workspace_id) & Customer.merged_into_id.is_(None)
        identified = Customer.user_id.is_not(None) | Customer.email.is_not(None)
        customers, known = session.execute(
            select(func.count(), func.sum(case((identified, 1), else_=0))).where(live)
        ).one()
    touch = {k: t for k, t in groups.items() if k[1] != OWN_CHANNEL and t.events}
    by_type: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    span = Tally()
    for (kind, channel), tally in touch.items():
        by_type[kind] = by_type.get(kind, 0) + tally.events
        name = channel or "(none)"
        by_channel[name] = by_channel.get(name, 0) + tally.events
        span.add(Tally(0, 0, 0.0, tally.first_ts, tally.last_ts))
    every = Tally()
    for tally in groups.values():
        every.add(tally)
    top_channels = sorted(by_channel.items(), key=lambda item: (-item[1], item[0]))[:12]
    return WorkspaceStats(
        customers=int(customers or 0),
        identified_customers=int(known or 0),
        events=sum(by_type.values()),
        system_events=sum(t.events for k, t in groups.items() if k[1] == OWN_CHANNEL),
        events_by_type=dict(sorted(by_type.items())),
        events_by_channel=dict(top_channels),
        purchases=every.purchases,
        revenue=every.revenue,
        first_event_at=_stamp(span.first_ts),
        last_event_at=_stamp(span.last_ts),
    )
