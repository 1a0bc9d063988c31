"""Own events are known by their channel and name, never by a message-id prefix a client can
send: a customer's purchase whose message id starts with ``clm-lc-`` counts like any other."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from clm.ingest.service import ingest
from clm.lifecycle import customer_history, run_lifecycle, update_lifecycle
from clm.lifecycle.engines import EngineName
from clm.store.engine import Database
from clm.store.models import Customer, Event
from tests.lifecycle.logs import DAY, message, new_workspace


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_a_customer_event_with_a_clm_looking_message_id_is_not_ignored(
    db: Database, engine: EngineName
) -> None:
    workspace_id = new_workspace(db)
    ingest(
        db,
        workspace_id,
        [
            message("ada", 0, "a1", kind="identify", email="ada@example.com"),
            # A client's own id scheme that happens to share CLM's prefix.
            message("ada", DAY, "clm-lc-order-1", "Order Completed", revenue=30),
            message("ada", 2 * DAY, "clm-lc-order-2", "Order Completed", revenue=20),
        ],
    )
    run_lifecycle(db, workspace_id, engine=engine)
    with db.session() as session:
        ada = session.scalar(select(Customer.id).where(Customer.user_id == "ada"))
    assert ada is not None
    stages = [t.to_stage for t in customer_history(db, workspace_id, ada)]
    # identify -> acquisition, first order -> conversion, second -> retention (by hand).
    assert stages[:3] == ["acquisition", "conversion", "retention"]


def test_the_lifecycles_own_announcements_stay_out_and_touch_nobody(db: Database) -> None:
    workspace_id = new_workspace(db)
    ingest(db, workspace_id, [message("bob", 0, "b1", "Order Completed", revenue=5)])
    first = run_lifecycle(db, workspace_id)
    with db.session() as session:
        announced = session.scalars(
            select(Event.channel).where(Event.name == "lifecycle_stage_changed")
        ).all()
    assert announced and set(announced) == {"system"}
    # The announcements are newer than the watermark, yet touch no customer: known as CLM's.
    again = update_lifecycle(db, workspace_id)
    assert (first.customers, again.customers) == (1, 0)
