"""A workspace's first use installs the shipped models once, however many processes ask at once.

Two ``clm worker`` processes and ``clm serve`` all read a new workspace's stage model when its
first events arrive. One installed ``classic`` version 1 while another, which had also found
none, stored its own copy as version 2 (no unique clash: it read the version after the first
commit) and made it the active one: the stage history was computed and announced under both,
so every ``lifecycle_stage_changed`` was logged twice (under two message ids), caught by
tests/e2e/test_two_workers.py on PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest

from clm.lifecycle import list_definitions
from clm.lifecycle.catalog import Kind, get_definition
from clm.store.engine import Database
from tests.lifecycle.logs import new_workspace


def _first_reads_at_once(db: Database, workspace_id: int, kind: Kind, readers: int) -> set[int]:
    """The definition ids ``readers`` threads get, asking all at once."""
    start = threading.Barrier(readers)
    seen: list[int] = []
    failures: list[BaseException] = []

    def read() -> None:
        start.wait()
        try:
            seen.append(get_definition(db, workspace_id, kind)[0].id)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return set(seen)


@pytest.mark.parametrize("kind", ["stages", "health"])
def test_many_first_readers_install_one_default(db: Database, kind: Kind) -> None:
    for round_ in range(4):
        workspace_id = new_workspace(db, f"w{round_}")
        seen = _first_reads_at_once(db, workspace_id, kind, 8)
        stored = list_definitions(db, workspace_id, kind)
        assert [(d.version, d.active) for d in stored] == [(1, True)]
        assert seen == {stored[0].id}
