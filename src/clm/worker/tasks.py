"""The live loop's tasks, on the same huey queue as the engagement worker.

* ``clm.live.pass(workspace_id)``: one ``live_pass``. Enqueued by the ingestion nudge after a
  commit, by the minute sweep, at start-up, and scheduled by a pass for the next due moment.
  Passes of one workspace never overlap inside a worker: a pass asked for while one runs makes
  the running one go round once more, so no nudge is lost and none runs twice at once.
* ``clm.live.sweep`` (every minute): a pass for every workspace, the safety net for anything a
  crash or a missed nudge left behind, and what moves a quiet workspace along with the clock.
* ``clm.live.readings(workspace_id)``: after each pass, the overview's and each report's
  default readings that the pass outdated are read again and stored
  (``clm.analytics.overview_readings``), off the pass's own thread, so the pages answer at
  once and a slow whole-log report never holds up stages and health. One at a time per
  workspace; each reading at most once per its interval.
* ``clm.live.refit(workspace_id)`` and ``clm.live.daily`` (at ``CLM_LIVE_PREDICT_HOUR`` UTC):
  predictions refitted after a large import and once a day; the new scores are events, so the
  pass enqueued after a refit carries them into stages and health.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from huey import crontab  # type: ignore[import-untyped]
from sqlalchemy import select

from clm.config import Settings, get_settings
from clm.engage.delivery import Queue, make_queue
from clm.engage.delivery.worker import stop_gently_on_sigterm
from clm.errors import ValidationError
from clm.store.models import Workspace
from clm.worker.live import live_pass

log = logging.getLogger("clm.worker")


class LiveQueue:
    """The engagement queue with the live loop's tasks registered beside its own."""

    def __init__(self, queue: Queue, settings: Settings) -> None:
        self.queue = queue
        self.huey = queue.huey
        self.settings = settings
        self._state = threading.Lock()
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._scheduled: dict[int, datetime] = {}
        self._reading: set[int] = set()

        self.run_pass: Any = self.huey.task(name="clm.live.pass")(self._pass)
        self.refit: Any = self.huey.task(name="clm.live.refit")(self._refit)
        self.readings: Any = self.huey.task(name="clm.live.readings")(self._readings)
        self.sweep: Any = self.huey.periodic_task(crontab(minute="*"), name="clm.live.sweep")(
            self._sweep
        )
        self.daily: Any = self.huey.periodic_task(
            crontab(minute="0", hour=str(settings.live_predict_hour)), name="clm.live.daily"
        )(self._daily)
        self.huey.on_startup(name="clm.live.startup")(self._sweep)

    def _workspaces(self) -> list[int]:
        with self.queue.database().session() as session:
            return [int(i) for i in session.scalars(select(Workspace.id).order_by(Workspace.id))]

    def _sweep(self) -> None:
        if not self.settings.live_enabled:
            return
        for workspace_id in self._workspaces():
            self.run_pass(workspace_id)

    def _daily(self) -> None:
        if self.settings.live_enabled:
            for workspace_id in self._workspaces():
                self.refit(workspace_id)

    def _claim(self, workspace_id: int) -> bool:
        with self._state:
            if workspace_id in self._running:
                self._again.add(workspace_id)
                return False
            self._running.add(workspace_id)
            return True

    def _release(self, workspace_id: int, failed: bool = False) -> bool:
        """True when the pass must run once more (asked for while it ran)."""
        with self._state:
            if not failed and workspace_id in self._again:
                self._again.discard(workspace_id)
                return True
            self._again.discard(workspace_id)
            self._running.discard(workspace_id)
            return False

    def _pass(self, workspace_id: int) -> None:
        if not self.settings.live_enabled or not self._claim(workspace_id):
            return
        db = self.queue.database()
        while True:
            try:
                report = live_pass(db, workspace_id, settings=self.settings)
            except Exception:
                self._release(workspace_id, failed=True)
                log.exception("live pass failed", extra={"workspace_id": workspace_id})
                return
            if not self._release(workspace_id):
                break
        if report.refit_due:
            self.refit(workspace_id)
        self._schedule(workspace_id, report.next_due)
        self.readings(workspace_id)

    def _readings(self, workspace_id: int) -> None:
        from clm.analytics.overview_readings import refresh_overview

        with self._state:
            if workspace_id in self._reading:
                return  # the running one reads whatever this one would
            self._reading.add(workspace_id)
        try:
            read = refresh_overview(self.queue.database(), workspace_id)
            if read:
                log.info("overview read", extra={"workspace_id": workspace_id, "kinds": read})
        except Exception:
            log.exception("overview readings failed", extra={"workspace_id": workspace_id})
        finally:
            with self._state:
                self._reading.discard(workspace_id)

    def _schedule(self, workspace_id: int, due: datetime | None) -> None:
        """Wake for the next due moment if it falls within the look-ahead and no earlier wake
        is already scheduled (the minute sweep covers what lies beyond)."""
        now = datetime.now(UTC)
        if due is None or (due - now).total_seconds() > self.settings.live_lookahead_seconds:
            return
        with self._state:
            booked = self._scheduled.get(workspace_id)
            if booked is not None and now < booked <= due:
                return
            self._scheduled[workspace_id] = due
        self.run_pass.schedule(args=(workspace_id,), eta=max(due, now))

    def _refit(self, workspace_id: int) -> None:
        from clm.predictions import fit_workspace

        try:
            report = fit_workspace(self.queue.database(), workspace_id)
        except ValidationError as error:  # nothing to fit yet: not a failure of the worker
            log.info("no refit", extra={"workspace_id": workspace_id, "reason": str(error)})
            return
        log.info("predictions refitted", extra={"workspace_id": workspace_id, "fit": report.fit_id})
        self.run_pass(workspace_id)

    def run(self, workers: int = 2) -> None:
        """Run the consumer in this process until SIGINT or SIGTERM (either lets the running
        tasks finish; a second one stops at once)."""
        consumer = self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=True,
            initial_delay=min(0.1, self.settings.live_poll_seconds),
            max_delay=self.settings.live_poll_seconds,
        )
        stop_gently_on_sigterm(consumer).run()


def make_live_queue(database_url: str | None = None, settings: Settings | None = None) -> LiveQueue:
    return LiveQueue(make_queue(database_url=database_url), settings or get_settings())


def run_worker(database_url: str | None = None, workers: int = 2) -> None:
    """``clm worker``: keep every workspace current and deliver the outbox until stopped."""
    make_live_queue(database_url).run(workers=workers)
