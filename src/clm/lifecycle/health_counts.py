"""Health-state counts of a workspace at an instant (the lifecycle overview's health half)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select

from clm.lifecycle.health import STATE_LABELS
from clm.lifecycle.health_inputs import get_scorecard
from clm.store.engine import Database
from clm.store.models import HealthSnapshot


def health_counts(db: Database, ws: int, when: datetime) -> dict[str, int]:
    """How many customers are in each health state at ``when``: each customer's latest score
    at or before it, under the workspace's current scorecard (every state listed, 0 if none)."""
    definition_id, _ = get_scorecard(db, ws)
    latest = (
        select(HealthSnapshot.customer_id, func.max(HealthSnapshot.ts).label("ts"))
        .where(
            HealthSnapshot.definition_id == definition_id,
            HealthSnapshot.ts <= int(when.timestamp()),
        )
        .group_by(HealthSnapshot.customer_id)
        .subquery()
    )
    query = (
        select(HealthSnapshot.state, func.count())
        .join(
            latest,
            and_(
                HealthSnapshot.customer_id == latest.c.customer_id, HealthSnapshot.ts == latest.c.ts
            ),
        )
        .where(HealthSnapshot.definition_id == definition_id)
        .group_by(HealthSnapshot.state)
    )
    counts = dict.fromkeys(STATE_LABELS.values(), 0)
    with db.session() as session:
        counts.update({STATE_LABELS[state]: int(n) for state, n in session.execute(query)})
    return counts
