"""The delivery worker on huey: SQLite-backed when embedded, Redis at scale.

The outbox table is the source of truth, the queue only says "look now": a ``drain`` task
delivers due messages until none is left and schedules itself for the next due time (a
retry's backoff, a quiet-hours window, an expiring lease); a periodic sweep every minute and
one at start-up catch whatever a crash left behind. Every minute a ``tick`` also runs the
time-driven work of every workspace (``schedule.run_all``: journeys, referral rewards after the
refund window, points earned from events and expired). Producers enqueue a ``drain`` after they
commit (``CLM_ENGAGE_NOTIFY``), so a message goes out within moments, not minutes.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab  # type: ignore[import-untyped]
from sqlalchemy import func, select

from clm.config import Settings, get_settings
from clm.engage.delivery import outbox
from clm.engage.delivery.deliver import deliver_due, log_missed_sends
from clm.store.engine import Database
from clm.store.models import EngageMessage

log = logging.getLogger("clm.engage.worker")
_LOOKAHEAD = 300.0  # seconds: a drain schedules the next one if something is due this soon


def next_due(db: Database) -> datetime | None:
    """The earliest moment some message becomes deliverable (due time or lease expiry)."""
    with db.session() as session:
        waiting = session.scalar(
            select(func.min(EngageMessage.next_attempt_at)).where(
                EngageMessage.status.in_(("pending", "held"))
            )
        )
        leased = session.scalar(
            select(func.min(EngageMessage.lease_until)).where(EngageMessage.status == "sending")
        )
    found = [t for t in (waiting, leased) if t is not None]
    return min(found) if found else None


def drain_once(db: Database, max_passes: int = 1_000) -> int:
    """Deliver due messages until none is due; returns how many were sent."""
    sent = 0
    for _ in range(max_passes):
        report = deliver_due(db)
        sent += report.sent
        if report.claimed == 0:
            break
    return sent


class Queue:
    """A huey instance with the engagement tasks registered on it."""

    def __init__(self, huey: Huey, database_url: str | None) -> None:
        self.huey = huey
        self._database_url = database_url
        self._db: Database | None = None
        self._open_lock = threading.Lock()

        def drain() -> int:
            db = self.database()
            sent = drain_once(db)
            due = next_due(db)
            if due is not None:
                delay = max(0.5, (due - datetime.now(UTC)).total_seconds() + 0.2)
                if delay <= _LOOKAHEAD:
                    self.drain.schedule(delay=delay)
            return sent

        def sweep() -> None:
            # The safety net: what a killed worker left (its leases run out, then this drains
            # them) and the events of messages it sent but never logged.
            try:
                log_missed_sends(self.database())
            except Exception:
                log.exception("logging missed sends failed")
            self.drain()

        def engage_tick() -> int:
            # Journeys, referral rewards, points earned and expired: then deliver what it sent.
            from clm.engage.playbooks.schedule import run_all

            reports = run_all(self.database())
            self.drain()
            return sum(r.sends for r in reports.values())

        def retention() -> int:
            # Each workspace's retention policy (clm.privacy): purge events past it.
            from clm.privacy import apply_retention_all

            return sum(r.purged for r in apply_retention_all(self.database()))

        def startup() -> None:
            self.drain()
            self.tick()

        # huey is untyped: its task handles are ``Any`` here.
        self.drain: Any = huey.task(name="clm.engage.drain")(drain)
        self.sweep: Any = huey.periodic_task(crontab(minute="*"), name="clm.engage.sweep")(sweep)
        self.tick: Any = huey.periodic_task(crontab(minute="*"), name="clm.engage.tick")(
            engage_tick
        )
        self.retention: Any = huey.periodic_task(
            crontab(minute="17"), name="clm.privacy.retention"
        )(retention)
        huey.on_startup(name="clm.engage.startup")(startup)

    def database(self) -> Database:
        # Locked: worker threads start tasks at once, and Alembic's start-up migration is not
        # thread-safe.
        with self._open_lock:
            if self._db is None:
                url = self._database_url or get_settings().effective_database_url
                self._db = Database.open(url)
        return self._db

    def run(self, workers: int = 2) -> None:
        """Run the consumer in this process until SIGINT or SIGTERM."""
        consumer = self.huey.create_consumer(workers=workers, worker_type="thread", periodic=True)
        stop_gently_on_sigterm(consumer).run()


def stop_gently_on_sigterm(consumer: Any) -> Any:
    """Make SIGTERM stop the huey consumer as Ctrl-C does: the running tasks finish first (a
    second signal stops at once).

    huey abandons the running tasks on SIGTERM, and SIGTERM is how systemd, Docker and
    Kubernetes stop a worker. A delivery cut there had marked its messages sent (each as its
    server accepted it) but never logged their "Email Sent" events nor backed off its
    failures, and a live pass stopped between its steps.
    """
    actions: dict[int, tuple[bool, bool]] = consumer._signal_actions  # signal: restart, graceful
    actions[signal.SIGTERM] = actions[signal.SIGINT]
    return consumer


def make_queue(settings: Settings | None = None, database_url: str | None = None) -> Queue:
    settings = settings or get_settings()
    target = settings.queue_target
    huey: Huey
    if target.startswith(("redis://", "rediss://")):
        huey = RedisHuey("clm-engage", url=target)
    else:
        huey = SqliteHuey("clm-engage", filename=target)
    return Queue(huey, database_url)


@lru_cache(maxsize=4)
def _producer_queue(target: str) -> Queue:
    return make_queue()


def enqueue_drain() -> None:
    """Tell the worker to look now (best effort: the periodic sweep is the safety net)."""
    settings = get_settings()
    if not settings.engage_notify:
        return
    try:
        _producer_queue(settings.queue_target).drain()
    except Exception:  # a queue hiccup must never undo a committed decision
        log.warning("could not notify the engagement worker", exc_info=True)


outbox.set_notifier(enqueue_drain)


def run_worker(database_url: str | None = None, workers: int = 2) -> None:
    """``clm worker``: deliver the outbox until stopped."""
    make_queue(database_url=database_url).run(workers=workers)
