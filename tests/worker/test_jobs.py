"""Background jobs (``clm.worker.jobs``): a job goes queued -> running (with progress) -> done
with its result; identical requests share one run; a failure is kept with its message and the
next identical request runs it again; another workspace cannot read it -- on both databases.

The work here is a function the test controls with events, so each state is seen for certain
(no sleeps): the test waits for a state, it never times one."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from clm.errors import NotFound
from clm.store.engine import Database
from clm.worker import jobs
from clm.worker.jobs import JobPublic, Progress
from tests.conftest import make_tenant


def _until(db: Database, ws: int, job_id: int, *states: str) -> JobPublic:
    """The job once it reaches one of ``states`` (a wait, not an assertion on time)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = jobs.get_job(db, ws, job_id)
        if job.status in states:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


class Gate:
    """Work that reports progress, then waits to be let go, then answers (or fails)."""

    def __init__(self, answer: dict[str, Any] | None = None, fail: str | None = None) -> None:
        self.answer, self.fail = answer or {}, fail
        self.started, self.release = threading.Event(), threading.Event()
        self.calls = 0

    def __call__(self, progress: Progress) -> dict[str, Any]:
        self.calls += 1
        progress(0.5, "half way")
        self.started.set()
        assert self.release.wait(60)
        if self.fail:
            raise ValueError(self.fail)
        return self.answer


def test_a_job_runs_in_the_background_and_identical_requests_share_it(db: Database) -> None:
    ws = make_tenant(db).id
    work = Gate({"answer": 42})
    first = jobs.submit(db, ws, "sum", {"a": 1, "b": [2, 3]}, work)
    assert first.status == "queued" and first.result is None
    assert work.started.wait(60)
    running = _until(db, ws, first.id, "running")
    assert (running.progress, running.message) == (0.5, "half way")
    # The same parameters (in another order) while it runs: the same job, not a second run.
    again = jobs.submit(db, ws, "sum", {"b": [2, 3], "a": 1}, Gate())
    assert again.id == first.id and again.status == "running"
    # Other parameters, or another kind: a job of their own.
    other = Gate({"answer": 7})
    different = jobs.submit(db, ws, "sum", {"a": 2, "b": [2, 3]}, other)
    assert different.id != first.id
    work.release.set()
    other.release.set()
    done = _until(db, ws, first.id, "done")
    assert (done.result, done.progress, done.error) == ({"answer": 42}, 1.0, None)
    assert done.finished_at is not None
    assert _until(db, ws, different.id, "done").result == {"answer": 7}
    assert work.calls == 1
    # Asked again soon after: the answer kept; once it is older than ``fresh_for``, a rerun.
    late = Gate({"answer": 43})
    assert jobs.submit(db, ws, "sum", {"a": 1, "b": [2, 3]}, late).result == {"answer": 42}
    assert late.calls == 0
    rerun = jobs.submit(db, ws, "sum", {"a": 1, "b": [2, 3]}, late, fresh_for=0)
    assert rerun.id == first.id and rerun.status == "queued"
    late.release.set()
    assert _until(db, ws, first.id, "done").result == {"answer": 43}


def test_a_failed_job_reports_its_error_and_is_run_again_when_asked(db: Database) -> None:
    ws = make_tenant(db).id
    broken = Gate(fail="no purchases before the cutoff")
    job = jobs.submit(db, ws, "backtest", {"cutoffs": 1}, broken)
    broken.release.set()
    failed = _until(db, ws, job.id, "failed", "done")
    assert failed.status == "failed" and failed.result is None
    assert failed.error == "ValueError: no purchases before the cutoff"
    fixed = Gate({"ok": True})
    fixed.release.set()
    retried = jobs.submit(db, ws, "backtest", {"cutoffs": 1}, fixed)
    assert retried.id == job.id and retried.status == "queued" and retried.error is None
    assert _until(db, ws, job.id, "done").result == {"ok": True}


def test_another_workspace_cannot_read_a_job(db: Database) -> None:
    ws, other = make_tenant(db).id, make_tenant(db, "other").id
    work = Gate({"secret": 1})
    work.release.set()
    job = jobs.submit(db, ws, "sum", {}, work)
    _until(db, ws, job.id, "done")
    with pytest.raises(NotFound):
        jobs.get_job(db, other, job.id)
    with pytest.raises(NotFound):
        jobs.get_job(db, ws, job.id + 1000)


def test_identical_requests_at_the_same_moment_start_one_run(db: Database) -> None:
    ws = make_tenant(db).id
    work = Gate({"n": 1})
    barrier = threading.Barrier(6)
    ids: list[int] = []

    def ask() -> None:
        barrier.wait()
        ids.append(jobs.submit(db, ws, "race", {"x": 1}, work).id)

    askers = [threading.Thread(target=ask) for _ in range(6)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(60)
    assert len(ids) == 6 and len(set(ids)) == 1
    work.release.set()
    assert _until(db, ws, ids[0], "done").result == {"n": 1}
    assert work.calls == 1
