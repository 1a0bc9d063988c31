"""One customer's lifecycle at a glance: stage, the features behind it, health and history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.features import DAY
from clm.lifecycle.health_explain import health_stored
from clm.lifecycle.health_service import health_history, health_now, log_events
from clm.lifecycle.queries import customer_history, stage_at
from clm.lifecycle.reference import feature_values
from clm.lifecycle.schemas import CustomerLifecycle
from clm.store.customers import require_customer
from clm.store.engine import Database


def customer_lifecycle(
    db: Database, workspace_id: int, customer_id: int, at: datetime | None = None
) -> CustomerLifecycle:
    """What ``clm customer show`` prints: the stage (and the rule and features behind it), the
    health score with its factors, and both histories up to ``at`` (default now: the stored
    current health score)."""
    when = at or datetime.now(UTC)
    with db.session() as session:
        require_customer(session, workspace_id, customer_id)  # 404 for another's or nobody's
    _, model = get_stage_model(db, workspace_id)
    events = sorted(log_events(db, workspace_id, customer_id), key=lambda e: e.ts)
    features: dict[str, Any] = {}
    if events:
        values = feature_values(model.features, events, int(when.timestamp()))
        for name, value in values.items():
            kind = model.features[name].type
            if kind == "days" and value is not None:
                value = round(value / DAY, 2)
            elif kind == "timestamp" and value is not None:
                value = datetime.fromtimestamp(value, UTC).isoformat()
            features[name] = value
    # Now: the stored current score (kept current by the live loop); re-scoring one customer
    # needs the population's purchase rhythm, a pass over the whole log. Another moment, or a
    # customer never scored: computed.
    health = health_stored(db, workspace_id, customer_id, when) if at is None else None
    if health is None:
        health = health_now(db, workspace_id, customer_id, when)
    return CustomerLifecycle(
        customer_id=customer_id,
        at=when,
        stage=stage_at(db, workspace_id, customer_id, when),
        features=features,
        stage_history=customer_history(db, workspace_id, customer_id, as_of=when),
        health=health,
        health_history=health_history(db, workspace_id, customer_id, when),
    )
