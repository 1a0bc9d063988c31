"""``settled_tops``: how far an id cursor may move. On PostgreSQL, not past an id a writer in
another process has drawn and not yet committed; readers of the log are not waited for; a
writer seen open past a whole wait is not waited for again. SQLite: the largest id."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from sqlalchemy import text

from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.settled import settled_top, settled_tops
from tests.lifecycle.logs import message, new_workspace

# Draws an event id in a process of its own, says so, and ends its transaction when told.
_WRITER = textwrap.dedent(
    """
    import sys
    from sqlalchemy import create_engine, text

    engine = create_engine(sys.argv[1])
    with engine.connect() as conn:
        conn.execute(text("SELECT nextval(pg_get_serial_sequence('events', 'id'))"))
        print("drawn", flush=True)
        sys.stdin.readline()
        conn.rollback()
    engine.dispose()
    """
)


def _shop(db: Database) -> tuple[int, int]:
    """Two workspaces with events; returns the first's id and its largest event id."""
    ws, other = new_workspace(db, "shop"), new_workspace(db, "other")
    ingest(db, ws, [message("a", 0, "a1", kind="page"), message("b", 1, "b1", kind="page")])
    ingest(db, other, [message("c", 2, "c1", kind="page")])
    with db.session() as session:
        top = session.scalar(text("SELECT max(id) FROM events WHERE workspace_id = :w"), {"w": ws})
    return ws, int(top)


def test_the_largest_id_when_no_writer_is_open(db: Database) -> None:
    ws, top = _shop(db)
    assert settled_top(db, "events", workspace_id=ws) == top
    assert settled_tops(db, ["events", "health_history"]) == (top + 1, 0)  # all workspaces
    with pytest.raises(ValueError, match="not a table"):
        settled_top(db, "customers")


def test_a_reader_of_the_log_is_not_waited_for(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    ws, top = _shop(db)
    with db.engine.connect() as reader:  # holds a lock on the events table until it ends
        reader.execute(text("SELECT count(*) FROM events")).scalar()
        assert settled_top(db, "events", workspace_id=ws, settle_seconds=0) == top


def test_a_writer_in_another_process_holds_the_top_back_until_it_ends(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    ws, top = _shop(db)
    url = db.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", _WRITER, url]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, env=env, **pipes) as writer:  # type: ignore[call-overload]
        try:
            assert writer.stdout.readline().strip() == "drawn"
            assert settled_top(db, "events", workspace_id=ws, settle_seconds=0.2) is None

            def end_writer() -> None:
                writer.stdin.write("\n")
                writer.stdin.flush()

            # Seen open past a whole wait: not waited for again while it stays open. (Without
            # the memo this call would wait, see the writer end after 1 s, return the top.)
            ending = threading.Timer(1.0, end_writer)
            ending.start()
            assert settled_top(db, "events", workspace_id=ws, settle_seconds=30) is None
            ending.join()
            assert writer.wait(timeout=30) == 0
            assert settled_top(db, "events", workspace_id=ws, settle_seconds=30) == top
        finally:
            if writer.poll() is None:
                writer.kill()


def test_a_short_writer_is_waited_for(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    ws, top = _shop(db)
    with db.engine.connect() as late:
        late.execute(text("SELECT nextval(pg_get_serial_sequence('events', 'id'))"))
        ending = threading.Timer(0.3, late.rollback)
        ending.start()
        assert settled_top(db, "events", workspace_id=ws, settle_seconds=30) == top
        ending.join()
