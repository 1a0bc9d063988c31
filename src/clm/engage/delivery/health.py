"""Is a customer happy, and stably so? Read from the lifecycle's health scorecard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from clm.errors import ClmError
from clm.lifecycle import health_history, health_now
from clm.store.engine import Database


@dataclass(frozen=True)
class HealthFacts:
    state: str | None
    stable: bool


def health_facts(
    db: Database, workspace_id: int, customer_ids: Sequence[int], stable_days: int, at: datetime
) -> dict[int, HealthFacts]:
    """Health state now and whether it has been ``happy`` for ``stable_days`` (by the stored
    health history; a customer with no stored change in the window counts as stable)."""
    found: dict[int, HealthFacts] = {}
    since = at - timedelta(days=stable_days)
    for customer_id in sorted(set(customer_ids)):
        try:
            now = health_now(db, workspace_id, customer_id, at)
            history = health_history(db, workspace_id, customer_id, at)
        except ClmError:
            found[customer_id] = HealthFacts(None, False)
            continue
        if now is None:
            found[customer_id] = HealthFacts(None, False)
            continue
        recent = [h for h in history if h.at > since]
        earlier = [h for h in history if h.at <= since]
        stable = all(h.state == "happy" for h in recent) and (
            not earlier or earlier[-1].state == "happy" or not recent
        )
        found[customer_id] = HealthFacts(now.state, stable and now.state == "happy")
    return found
