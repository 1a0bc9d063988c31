"""Group commit: requests that arrive together share one transaction, and one disk flush.

A durable commit costs a flush to disk (milliseconds on SQLite with ``synchronous=FULL``); one
per HTTP request would cap ingestion at a few hundred requests a second. The writer thread
takes every batch waiting in its queue, stores them all in one transaction, commits, and only
then answers each caller: the acknowledgement still means "committed". If that shared
transaction fails, each batch is retried in a transaction of its own, so one bad batch cannot
fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from clm.errors import ClmError
from clm.ingest.identity import IdentityResolver
from clm.ingest.normalize import EventRecord
from clm.ingest.service import known_identities, store_batches_in, store_records
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

    async def store(self, workspace_id: int, records: list[EventRecord]) -> tuple[int, int]:
        """(stored, duplicates), once committed."""
        return await asyncio.wrap_future(self.submit(workspace_id, records))

    async def aclose(self) -> None:
        self.close()

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
        results = commit_batches(self.db, [(job.workspace_id, job.records) for job in jobs])
        if self._checkpointer is not None:
            self._checkpointer.poke()
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, Exception):
                job.done.set_exception(result)
            else:
                job.done.set_result(result)


def commit_batches(
    db: Database, batches: Sequence[tuple[int, list[EventRecord]]]
) -> list[tuple[int, int] | ClmError]:
    """Store (workspace id, records) batches in one transaction, so one disk flush serves them
    all: for each, (stored, duplicates), or the error that kept it out. If the shared
    transaction fails, each batch is retried alone, so one bad batch cannot fail the others."""
    known = known_identities(db)
    results: list[tuple[int, int] | ClmError] = [(0, 0)] * len(batches)
    learned: list[tuple[int, IdentityResolver]] = []
    by_workspace: dict[int, list[int]] = {}
    for index, (workspace_id, _) in enumerate(batches):
        by_workspace.setdefault(workspace_id, []).append(index)
    try:
        with db.transaction() as session:
            for workspace_id, indexes in by_workspace.items():
                counts, resolver = store_batches_in(
                    session, workspace_id, [batches[i][1] for i in indexes], known
                )
                for i, count in zip(indexes, counts, strict=True):
                    results[i] = count
                if resolver is not None:
                    learned.append((workspace_id, resolver))
    except Exception:
        if len(batches) == 1:
            log.exception("storing a batch failed")
            return [_failure()]
        return [_store_alone(db, workspace_id, records) for workspace_id, records in batches]
    for workspace_id, resolver in learned:
        known.learn(workspace_id, resolver)
    return results


def _store_alone(
    db: Database, workspace_id: int, records: list[EventRecord]
) -> tuple[int, int] | ClmError:
    try:
        return store_records(db, workspace_id, records)
    except Exception:
        log.exception("storing a batch failed")
        return _failure()


def _failure() -> ClmError:
    return ClmError("The events could not be stored; nothing of this batch was acknowledged")
