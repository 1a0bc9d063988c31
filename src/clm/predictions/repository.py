"""Queries of the predictions service: purchase and subscription histories, fits, scores.

Every query filters by workspace. Customer ids come from identities (the ``customer_events``
view's join), so events follow a customer through merges without touching the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from clm.errors import NotFound
from clm.store.bulk import insert_events
from clm.store.models import Customer, Event, Identity, PredictionFit

PURCHASE_EVENT = "Order Completed"
SCORE_EVENT = "Prediction Scored"
SUBSCRIPTION_STARTED = "Subscription Started"
SUBSCRIPTION_CANCELLED = "Subscription Cancelled"


def purchases(session: Session, workspace_id: int, until_ts: int) -> pd.DataFrame:
    """``customer_id, ts, revenue`` of every purchase with revenue before ``until_ts``."""
    rows = session.execute(
        select(Identity.customer_id, Event.ts, Event.revenue)
        .join(Identity, Identity.id == Event.identity_id)
        .where(
            Event.workspace_id == workspace_id,
            Event.name == PURCHASE_EVENT,
            Event.revenue.is_not(None),
            Event.ts < until_ts,
        )
    ).all()
    return pd.DataFrame(rows, columns=["customer_id", "ts", "revenue"]).astype(
        {"customer_id": "int64", "ts": "int64", "revenue": "float64"}
    )


def subscription_events(session: Session, workspace_id: int, until_ts: int) -> pd.DataFrame:
    """``customer_id, ts, name`` of subscription starts and cancellations before ``until_ts``."""
    rows = session.execute(
        select(Identity.customer_id, Event.ts, Event.name)
        .join(Identity, Identity.id == Event.identity_id)
        .where(
            Event.workspace_id == workspace_id,
            Event.name.in_([SUBSCRIPTION_STARTED, SUBSCRIPTION_CANCELLED]),
            Event.ts < until_ts,
        )
    ).all()
    return pd.DataFrame(rows, columns=["customer_id", "ts", "name"]).astype(
        {"customer_id": "int64", "ts": "int64", "name": "string"}
    )


def identity_of(
    session: Session, workspace_id: int, customer_ids: Sequence[int]
) -> dict[int, tuple[int, str | None]]:
    """One identity per customer to hang their scores on: their user id when they have one.

    Returns ``customer_id -> (identity_id, user_id or None)``.
    """
    wanted = set(customer_ids)
    rank = case((Identity.kind == "user_id", 0), else_=1)
    rows = session.execute(
        select(Identity.customer_id, Identity.id, Identity.kind, Identity.value)
        .where(Identity.workspace_id == workspace_id)
        .order_by(Identity.customer_id, rank, Identity.id)
    )
    chosen: dict[int, tuple[int, str | None]] = {}
    for customer_id, identity_id, kind, value in rows:
        if customer_id in wanted and customer_id not in chosen:
            chosen[customer_id] = (identity_id, value if kind == "user_id" else None)
    return chosen


def insert_scores(session: Session, rows: Sequence[Sequence[Any]]) -> int:
    """Append ``Prediction Scored`` events in bulk; returns how many were new."""
    return insert_events(session.connection(), rows)


def find_fit(session: Session, workspace_id: int, fit_id: str) -> PredictionFit | None:
    return session.scalar(
        select(PredictionFit).where(
            PredictionFit.workspace_id == workspace_id, PredictionFit.fit_id == fit_id
        )
    )


def latest_fit(session: Session, workspace_id: int) -> PredictionFit:
    fit = session.scalar(
        select(PredictionFit)
        .where(PredictionFit.workspace_id == workspace_id)
        .order_by(PredictionFit.created_at.desc(), PredictionFit.id.desc())
        .limit(1)
    )
    if fit is None:
        raise NotFound("No prediction fit in this workspace yet: run a fit first")
    return fit


def resolve_customer(session: Session, workspace_id: int, customer_id: int) -> int:
    """The live id of a customer, following merges; NotFound outside the workspace."""
    customer = session.get(Customer, customer_id)
    hops = 0
    while customer is not None and customer.merged_into_id is not None and hops < 100:
        customer = session.get(Customer, customer.merged_into_id)
        hops += 1
    if customer is None or customer.workspace_id != workspace_id:
        raise NotFound(f"No customer {customer_id}")
    return customer.id


def score_events(
    session: Session, workspace_id: int, customer_id: int, limit: int
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """A customer's ``Prediction Scored`` events, newest first: (timestamp, message id, props)."""
    rows = session.execute(
        select(Event.timestamp, Event.message_id, Event.properties)
        .join(Identity, Identity.id == Event.identity_id)
        .where(
            Event.workspace_id == workspace_id,
            Identity.customer_id == customer_id,
            Event.name == SCORE_EVENT,
        )
        .order_by(Event.ts.desc(), Event.id.desc())
        .limit(limit)
    ).all()
    return [(row[0], row[1], dict(row[2])) for row in rows]


def purchase_times(session: Session, workspace_id: int, customer_id: int) -> list[int]:
    """Epoch seconds of one customer's purchases with revenue, oldest first."""
    return list(
        session.scalars(
            select(Event.ts)
            .join(Identity, Identity.id == Event.identity_id)
            .where(
                Event.workspace_id == workspace_id,
                Identity.customer_id == customer_id,
                Event.name == PURCHASE_EVENT,
                Event.revenue.is_not(None),
            )
            .order_by(Event.ts)
        )
    )
