"""Group commit: requests that arrive together share one transaction, and one disk flush.

A durable commit costs a flush to disk (milliseconds on SQLite with ``synchronous=FULL``); one
per HTTP request would cap ingestion at a few hundred requests a second. The writer thread
takes every batch waiting in its queue, stores them all in one transaction, commits, and only
then answers each caller: the acknowledgement still means "committed". If that shared
transaction fails, each batch is retried in a transaction of its own, so one bad batch cannot
fail its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from clm.ingest.identity import IdentityResolver
from clm.ingest.normalize import EventRecord
from clm.ingest.service import known_identities, store_in, store_records
from clm.store.engine import Database

log = logging.getLogger("clm.ingest")


@dataclass
class _Job:
    workspace_id: int
    records: list[EventRecord]
    done: Future[tuple[int, int]] = field(default_factory=Future)


class EventWriter:
    """One writer thread per database handle; ``submit`` from any thread or event loop."""

    def __init__(self, db: Database, *, max_records: int = 5_000) -> None:
        self.db = db
        self.max_records = max_records
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._checkpointer = db.start_checkpointer()  # keeps WAL copying out of our commits
        self._thread = threading.Thread(target=self._run, name="clm-event-writer", daemon=True)
        self._thread.start()

    def submit(self, workspace_id: int, records: list[EventRecord]) -> Future[tuple[int, int]]:
        """Queue records; the future resolves to (stored, duplicates) once committed."""
        job = _Job(workspace_id, records)
        if not records:
            job.done.set_result((0, 0))
        else:
            self._queue.put(job)
        return job.done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.db.stop_checkpointer(self._checkpointer)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, size, stop = [job], len(job.records), False
            while size < self.max_records:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
                size += len(more.records)
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        known = known_identities(self.db)
        results: list[tuple[int, int]] = []
        learned: list[tuple[int, IdentityResolver]] = []
        try:
            with self.db.transaction() as session:
                for job in jobs:
                    stored, duplicates, resolver = store_in(
                        session, job.workspace_id, job.records, known
                    )
                    results.append((stored, duplicates))
                    if resolver is not None:
                        learned.append((job.workspace_id, resolver))
        except Exception:
            if len(jobs) == 1:
                log.exception("storing a batch failed")
                jobs[0].done.set_exception(_failure())
                return
            for job in jobs:  # find the culprit: each batch alone
                self._commit_alone(job)
            return
        if self._checkpointer is not None:
            self._checkpointer.poke()
        for workspace_id, resolver in learned:
            known.learn(workspace_id, resolver)
        for job, result in zip(jobs, results, strict=True):
            job.done.set_result(result)

    def _commit_alone(self, job: _Job) -> None:
        try:
            job.done.set_result(store_records(self.db, job.workspace_id, job.records))
        except Exception:
            log.exception("storing a batch failed")
            job.done.set_exception(_failure())


def _failure() -> Exception:
    from clm.errors import ClmError

    return ClmError("The events could not be stored; nothing of this batch was acknowledged")
