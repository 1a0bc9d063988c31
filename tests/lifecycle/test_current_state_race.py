"""First refreshes of a new workspace at once: each finds no cursor row (and no stage model nor
scorecard yet), the losers of each unique race must read the winner's row, and no request may
fail (the overview's concurrent calls did: a 500 on PostgreSQL)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from clm.ingest import ingest
from clm.lifecycle.current_state import refresh_state
from clm.store.engine import Database
from clm.store.models import CustomerState, EngageCursor
from tests.lifecycle.logs import message, new_workspace


def test_concurrent_first_refreshes_both_succeed(db: Database) -> None:
    for round_ in range(3):  # a race: try it a few times on fresh workspaces
        ws = new_workspace(db, f"race{round_}")
        ingest(db, ws, [message(f"u{n}", 100 + n, f"m{round_}-{n}", "Signed Up") for n in range(5)])
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def refresh(
            workspace: int = ws,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            start.wait()
            try:
                refresh_state(db, workspace)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=refresh) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with db.session() as session:
            rows = session.scalar(
                select(func.count())
                .select_from(CustomerState)
                .where(CustomerState.workspace_id == ws)
            )
            cursors = session.scalars(
                select(EngageCursor.consumer).where(EngageCursor.workspace_id == ws)
            ).all()
        assert rows == 5
        assert len(cursors) == len(set(cursors))
