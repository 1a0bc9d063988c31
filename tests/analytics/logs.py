"""Hand-built event logs and stage histories for the report tests.

Events go in through ``clm.ingest.ingest`` (as Segment messages); stage history is written
directly under a small test model, so each test states exactly which transitions exist and the
expected numbers are worked out from them by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from clm.ingest import ingest
from clm.lifecycle.catalog import apply_stage_model
from clm.lifecycle.history import replace_history
from clm.store.engine import Database
from clm.store.models import Customer
from clm.store.workspaces import create_workspace

DAY = 86_400
MODEL = """
name: test_funnel
stages:
  - name: lead
    initial: true
  - name: trial
    rule: identified
  - name: paying
    rule: purchase_count >= 1
  - name: loyal
    rule: purchase_count >= 3
  - name: churned
    exit: true
    rule: subscription_status == 'Subscription Cancelled'
"""
NO_CHURN_MODEL = """
name: no_churn
stages:
  - name: lead
    initial: true
  - name: paying
    rule: purchase_count >= 1
"""


def ts(day: str) -> int:
    """Epoch seconds of an ISO date (UTC)."""
    moment = datetime.fromisoformat(day)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def event(user: str, when: str, name: str, mid: str, *, channel: str | None = None,
          campaign: str | None = None, **properties: Any) -> dict[str, Any]:  # fmt: skip
    """A track message at ``when`` (ISO); channel and campaign go in context.campaign."""
    raw: dict[str, Any] = {
        "type": "track", "userId": user, "messageId": mid, "event": name,
        "timestamp": datetime.fromtimestamp(ts(when), UTC).isoformat(), "properties": properties,
    }  # fmt: skip
    if channel or campaign:
        utm: dict[str, Any] = {}
        if channel:
            utm["medium"] = channel
        if campaign:
            utm["name"] = campaign
        raw["context"] = {"campaign": utm}
    return raw


def load(db: Database, messages: Sequence[dict[str, Any]], slug: str = "acme",
         model: str = MODEL) -> tuple[int, dict[str, int], int]:  # fmt: skip
    """A workspace with ``messages`` and the test model; (workspace id, user -> customer id,
    definition id)."""
    with db.transaction() as session:
        workspace_id = create_workspace(session, slug).id
    if messages:
        result = ingest(db, workspace_id, list(messages))
        assert result.stored == len(messages), result.rejected
    info = apply_stage_model(db, workspace_id, model)
    with db.session() as session:
        rows = session.execute(
            select(Customer.user_id, Customer.id).where(Customer.workspace_id == workspace_id)
        )
        customers = {user: cid for user, cid in rows if user}
    return workspace_id, customers, info.id


def write_history(db: Database, workspace_id: int, definition_id: int, customers: dict[str, int],
                  moves: Sequence[tuple[str, str, str | None, str]]) -> None:  # fmt: skip
    """Store transitions ``(user, ISO date, from_stage, to_stage)``."""
    rows = [
        {"workspace_id": workspace_id, "definition_id": definition_id,
         "customer_id": customers[user], "ts": ts(when),
         "occurred_at": datetime.fromtimestamp(ts(when), UTC), "from_stage": source,
         "to_stage": target, "kind": "test", "rule": "test", "cause_message_id": None,
         "announced": True}
        for user, when, source, target in moves
    ]  # fmt: skip
    with db.transaction() as session:
        replace_history(session, definition_id, rows)
