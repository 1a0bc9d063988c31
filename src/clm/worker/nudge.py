"""The ingestion side: tell the worker, after a commit, that a workspace has new events.

``nudge(workspace_id)`` costs a set insertion under a lock: a daemon thread of the serving
process turns the nudges into ``clm.live.pass`` tasks, at most one per workspace every
``CLM_LIVE_NUDGE_SECONDS``, so a burst of requests costs one queue write and ``/v1`` never waits
on the queue. Every nudge is followed by an enqueue that happens after it (the thread takes the
pending set only after the nudge put its workspace in), so no committed event waits for the
minute sweep. Best effort by design: the sweep is the safety net if the queue is down.

Only processes that ask for it nudge (``CLM_LIVE_NUDGE``, set by ``clm serve`` and the demo);
an app built in-process by a test or a script does not write to a queue nobody reads.
"""

from __future__ import annotations

import logging
import threading
import time

from clm.config import get_settings

log = logging.getLogger("clm.worker.nudge")


class Nudger:
    """Collects workspace ids and enqueues a live pass for each, debounced."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending: set[int] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def nudge(self, workspace_id: int) -> None:
        with self._wake:
            self._pending.add(workspace_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="clm-nudge", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _loop(self) -> None:
        from clm.worker.tasks import make_live_queue

        queue = make_live_queue()
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                ready, self._pending = self._pending, set()
            for workspace_id in sorted(ready):
                try:
                    queue.run_pass(workspace_id)
                except Exception:  # a queue hiccup must never reach ingestion
                    log.warning("could not nudge the live worker", exc_info=True)
            time.sleep(self.interval)


_nudger: Nudger | None = None
_lock = threading.Lock()


def nudge(workspace_id: int) -> None:
    """Ask the worker for a pass over ``workspace_id`` soon (no-op unless ``CLM_LIVE_NUDGE``)."""
    global _nudger
    settings = get_settings()
    if not (settings.live_nudge and settings.live_enabled):
        return
    if _nudger is None:
        with _lock:
            if _nudger is None:
                _nudger = Nudger(settings.live_nudge_seconds)
    _nudger.nudge(workspace_id)
