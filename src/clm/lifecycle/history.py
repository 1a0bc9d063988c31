"""Storing stage history, and announcing each transition in the event log.

Stored history includes transitions that are already scheduled (a lapse next month): the
history of a customer without new events is fully determined, so every read filters on
``ts <= as_of`` and is never stale. ``announce`` writes one ``lifecycle_stage_changed`` event
per transition whose time has come, with a deterministic message id, so recomputing or retrying
never duplicates one. (A late event that rewrites the past cannot take back an event already
announced: the log is append-only; the stored history is always the corrected one.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.engines import OWN_EVENTS_PREFIX
from clm.store.engine import Database
from clm.store.models import Event, Identity, StageTransition
from clm.store.own_events import HEALTH_CHANGED, OWN_CHANNEL, STAGE_CHANGED

CHUNK = 5_000
EVENT_NAME, HEALTH_EVENT_NAME = STAGE_CHANGED, HEALTH_CHANGED


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def transition_rows(
    table: pa.Table, workspace_id: int, definition_id: int, model: CompiledModel
) -> list[dict[str, Any]]:
    """Rows for ``stage_transitions`` from an engine's result table."""
    data = table.to_pydict()
    kinds: dict[tuple[str | None, str], str] = {}
    rows = []
    for customer, ts, source, target, rule, cause in zip(
        data["customer_id"],
        data["ts"],
        data["from_stage"],
        data["to_stage"],
        data["rule"],
        data["cause_message_id"],
        strict=True,
    ):
        kind = kinds.get((source, target))
        if kind is None:
            kind = kinds[(source, target)] = model.transition_kind(source, target)
        rows.append(
            {
                "workspace_id": workspace_id,
                "definition_id": definition_id,
                "customer_id": int(customer),
                "ts": int(ts),
                "occurred_at": utc(int(ts)),
                "from_stage": source,
                "to_stage": target,
                "kind": kind,
                "rule": rule,
                "cause_message_id": cause,
                "announced": False,
            }
        )
    return rows


def replace_history(
    session: Session,
    definition_id: int,
    rows: Sequence[dict[str, Any]],
    customer_ids: Iterable[int] | None = None,
) -> None:
    """Swap the stored history of ``customer_ids`` (all customers when None) for ``rows``."""
    base = delete(StageTransition).where(StageTransition.definition_id == definition_id)
    if customer_ids is None:
        session.execute(base)
    else:
        ids = sorted(set(customer_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            session.execute(base.where(StageTransition.customer_id.in_(chunk)))
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(StageTransition), list(rows[start : start + CHUNK]))


def announce(
    db: Database,
    session: Session,
    workspace_id: int,
    definition_id: int,
    model: CompiledModel,
    now: datetime,
) -> int:
    """Write the due, unannounced transitions as events; returns how many were written."""
    cutoff = int(now.timestamp())
    due = select(StageTransition).where(
        StageTransition.definition_id == definition_id,
        StageTransition.announced.is_(False),
        StageTransition.ts <= cutoff,
    )
    written = 0
    while True:
        batch = list(session.scalars(due.order_by(StageTransition.id).limit(CHUNK)))
        if not batch:
            return written
        identities = _identity_of(session, {t.customer_id for t in batch})
        rows = [
            _event_row(workspace_id, identities[t.customer_id], t, model, now)
            for t in batch
            if t.customer_id in identities
        ]
        if rows:
            insert_fn = pg_insert if db.dialect == "postgresql" else sqlite_insert
            statement = insert_fn(Event).on_conflict_do_nothing(
                index_elements=["workspace_id", "message_id"]
            )
            # Counted as inserted: a recomputed customer's history is re-announced, and the
            # message ids already in the log are (rightly) not written twice.
            written += len(rows) - _already_logged(session, workspace_id, rows)
            session.execute(statement, rows)
        session.execute(
            update(StageTransition)
            .where(StageTransition.id.in_([t.id for t in batch]))
            .values(announced=True)
        )


def _already_logged(session: Session, workspace_id: int, rows: Sequence[dict[str, Any]]) -> int:
    ids = [r["message_id"] for r in rows]
    found = 0
    for start in range(0, len(ids), 500):
        found += int(
            session.scalar(
                select(func.count()).where(
                    Event.workspace_id == workspace_id,
                    Event.message_id.in_(ids[start : start + 500]),
                )
            )
            or 0
        )
    return found


def announce_health(
    db: Database, session: Session, workspace_id: int, changes: Sequence[dict[str, Any]]
) -> int:
    """Write ``health_state_changed`` events for stored health rows where the state changed.

    Message ids are ``clm-lc-h<definition>-<customer>-<ts>-<state>``: a rerun inserts nothing
    twice. Like the stage events they are CLM's own (``system`` channel), which keeps them out of
    the lifecycle's inputs (``engines.lifecycle_output``).
    """
    written = 0
    for start in range(0, len(changes), CHUNK):
        batch = changes[start : start + CHUNK]
        identities = _identity_of(session, {int(c["customer_id"]) for c in batch})
        rows = [
            _health_event(workspace_id, identities[c["customer_id"]], c)
            for c in batch
            if c["customer_id"] in identities
        ]
        if rows:
            insert_fn = pg_insert if db.dialect == "postgresql" else sqlite_insert
            statement = insert_fn(Event).on_conflict_do_nothing(
                index_elements=["workspace_id", "message_id"]
            )
            session.execute(statement, rows)
        written += len(rows)
    return written


def _health_event(workspace_id: int, identity_id: int, change: dict[str, Any]) -> dict[str, Any]:
    definition_id, customer_id, ts = change["definition_id"], change["customer_id"], change["ts"]
    return {
        **_event_base(workspace_id, identity_id, change["occurred_at"]),
        "message_id": f"{OWN_EVENTS_PREFIX}h{definition_id}-{customer_id}-{ts}-{change['state']}",
        "name": HEALTH_EVENT_NAME,
        "ts": ts,
        "properties": {
            "customer_id": customer_id,
            "definition_id": definition_id,
            "from_state": change["from_state"],
            "to_state": change["state"],
            "score": change["score"],
            "cause_message_id": change["cause_message_id"],
        },
    }


def _event_base(workspace_id: int, identity_id: int, at: datetime) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "identity_id": identity_id,
        "type": "track",
        "user_id": None,
        "anonymous_id": None,
        "timestamp": at,
        "received_at": datetime.now(UTC),
        "sent_at": None,
        "original_timestamp": None,
        "channel": OWN_CHANNEL,
        "campaign": None,
        "source": None,
        "revenue": None,
        "currency": None,
        "context": {"library": {"name": "clm-lifecycle"}},
        "traits": None,
    }


def _identity_of(session: Session, customer_ids: set[int]) -> dict[int, int]:
    query = (
        select(Identity.customer_id, func.min(Identity.id))
        .where(Identity.customer_id.in_(sorted(customer_ids)))
        .group_by(Identity.customer_id)
    )
    return {customer: identity for customer, identity in session.execute(query)}


def message_id(definition_id: int, customer_id: int, ts: int, to_stage: str) -> str:
    return f"{OWN_EVENTS_PREFIX}{definition_id}-{customer_id}-{ts}-{to_stage}"


def _event_row(
    workspace_id: int, identity_id: int, t: StageTransition, model: CompiledModel, now: datetime
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "identity_id": identity_id,
        "message_id": message_id(t.definition_id, t.customer_id, t.ts, t.to_stage),
        "type": "track",
        "name": EVENT_NAME,
        "user_id": None,
        "anonymous_id": None,
        "timestamp": t.occurred_at,
        "ts": t.ts,
        "received_at": now,
        "sent_at": None,
        "original_timestamp": None,
        "channel": OWN_CHANNEL,
        "campaign": None,
        "source": None,
        "revenue": None,
        "currency": None,
        "properties": {
            "customer_id": t.customer_id,
            "model": model.name,
            "definition_id": t.definition_id,
            "from_stage": t.from_stage,
            "to_stage": t.to_stage,
            "kind": t.kind,
            "rule": t.rule,
            "cause_message_id": t.cause_message_id,
        },
        "context": {"library": {"name": "clm-lifecycle"}},
        "traits": None,
    }
