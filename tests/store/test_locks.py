"""``one_at_a_time``: a named lock per workspace that holds across threads and processes.

The engagement tick used to run twice at once (the worker's minute tick beside a live pass):
on PostgreSQL both saw a new purchaser as not enrolled, both enrolled her, and she got two
welcome emails (the fresh-clone CI run of stop 14 caught it in tests/e2e/test_live.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.schedule import run_due
from clm.engage.schemas import Policy
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.locks import one_at_a_time
from clm.store.models import EngageJourney, EngageMessage
from tests.conftest import make_tenant

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from clm.store.engine import Database
    from clm.store.locks import one_at_a_time

    db = Database.open(sys.argv[1], run_migrations=False)
    with one_at_a_time(db, "engage", 7):
        print("held", flush=True)
        sys.stdin.readline()  # hold until told (or killed)
    print("released", flush=True)
    """
)


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def _holder(db: Database) -> subprocess.Popen[str]:
    """Another process holding ("engage", 7), once it has printed "held"."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, _url(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def _try_in_thread(db: Database, workspace_id: int) -> threading.Event:
    """Ask for ("engage", workspace_id) on a thread; the event is set once it is granted."""
    granted = threading.Event()

    def take() -> None:
        with one_at_a_time(db, "engage", workspace_id):
            granted.set()

    threading.Thread(target=take, daemon=True).start()
    return granted


def test_another_process_waits_until_the_holder_lets_go(db: Database) -> None:
    holder = _holder(db)
    try:
        waiting = _try_in_thread(db, 7)
        # Not granted while the other process holds it (a broken lock is granted at once).
        assert not waiting.wait(1.0)
        other_workspace = _try_in_thread(db, 8)
        assert other_workspace.wait(30), "another workspace's lock is not held by anyone"
        with one_at_a_time(db, "engage", 7, wait=False) as held:
            assert held is False  # asked not to wait: told at once that another holds it
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert waiting.wait(30)
    finally:
        _end(holder)


def _end(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()


def test_a_killed_holder_releases_the_lock(db: Database) -> None:
    holder = _holder(db)
    waiting = _try_in_thread(db, 7)
    assert not waiting.wait(0.5)
    holder.send_signal(signal.SIGKILL)
    _end(holder)
    assert waiting.wait(30), "the lock outlived the process that held it"


def test_two_threads_of_one_process_exclude_each_other(db: Database) -> None:
    inside = 0
    most = 0
    count = threading.Lock()
    start = threading.Barrier(4)

    def work() -> None:
        nonlocal inside, most
        start.wait()
        for _ in range(20):
            with one_at_a_time(db, "engage", 1):
                with count:
                    inside += 1
                    most = max(most, inside)
                with count:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


def test_without_waiting_the_lock_is_held_when_free(db: Database) -> None:
    with one_at_a_time(db, "state", 3, wait=False) as held:
        assert held is True
        with one_at_a_time(db, "state", 4, wait=False) as other:
            assert other is True


def test_lock_names_are_plain_words(db: Database) -> None:
    with pytest.raises(ValueError, match="lowercase"), one_at_a_time(db, "../etc", 1):
        pass


WELCOME = {
    "name": "welcome-on-purchase",
    "trigger": {"type": "event", "event": "Order Completed"},
    "steps": [
        {"id": "hello", "type": "send", "category": "account", "purpose": "transactional",
         "content": {"subject": "Welcome", "text": "Hello"}},
    ],
}  # fmt: skip


def test_engagement_ticks_racing_each_other_enrol_and_send_once(db: Database) -> None:
    """Six ticks at once over 60 new purchasers: one journey and one email each."""
    shop = make_tenant(db)
    now = datetime.now(UTC)
    with db.transaction() as session:
        repo.set_policy(session, shop.id, Policy(quiet_hours=None, caps=[]))
    pb.apply_playbook(db, shop.id, pb.parse_playbook(WELCOME))
    users = [f"u{i}" for i in range(60)]
    ingest(db, shop.id, [
        message
        for user in users
        for message in (
            {"type": "identify", "userId": user, "messageId": f"id-{user}",
             "traits": {"email": f"{user}@example.org"},
             "timestamp": (now - timedelta(seconds=2)).isoformat()},
            {"type": "track", "event": "Order Completed", "userId": user,
             "messageId": f"o-{user}", "timestamp": (now - timedelta(seconds=1)).isoformat()},
        )
    ], received_at=now)  # fmt: skip
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def tick() -> None:
        start.wait()
        try:
            run_due(db, shop.id, now)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with db.session() as session:
        journeys = session.execute(
            select(EngageJourney.customer_id, func.count()).group_by(EngageJourney.customer_id)
        ).all()
        messages = session.execute(
            select(EngageMessage.customer_id, func.count()).group_by(EngageMessage.customer_id)
        ).all()
    assert len(journeys) == len(users) and {n for _, n in journeys} == {1}
    assert len(messages) == len(users) and {n for _, n in messages} == {1}
