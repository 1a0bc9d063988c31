"""Slow reads as background jobs: a page asks, gets a job id at once and polls for progress and
the result, instead of holding a request open for seconds (a health backtest reads the whole
log at each cutoff; the first scorecard preview builds every customer's features).

A job is a ``jobs`` row, so every server process sees its state and a failure is kept with its
message. Identical requests (same workspace, kind and parameters) share one row and one run; a
request after a failure, or once the answer is older than ``fresh_for``, runs it again in the
same row. The work runs on a daemon thread of the process that was asked, as the overview's kept
readings do (``clm.analytics.kept``): these answers are wanted only by the page that asked, and
``clm serve`` runs without the huey worker (``clm worker``), which owns the live loop and the
outbox. A job left ``running`` by a process that stopped is reported failed once it has been
silent for ``STALE_SECONDS`` and is run again by the next identical request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from clm.errors import NotFound
from clm.store.engine import Database
from clm.store.models import Job

log = logging.getLogger("clm.worker.jobs")
STALE_SECONDS = 900.0
FRESH_SECONDS = 300.0

Progress = Callable[[float, str], None]
"""Called by the work as it goes: the share done (0-1) and what it is doing."""
Work = Callable[[Progress], dict[str, Any]]


class JobPublic(BaseModel):
    """A background job: ``status`` queued, running, done (``result`` set) or failed
    (``error`` says why); ``progress`` is the share done, ``message`` the current step."""

    id: int
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def request_key(kind: str, params: dict[str, Any]) -> str:
    """The digest that makes two requests the same job."""
    text = json.dumps({"kind": kind, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _stale(row: Job, now: datetime) -> bool:
    return row.status in ("queued", "running") and (now - row.updated_at) > timedelta(
        seconds=STALE_SECONDS
    )


def _public(row: Job, now: datetime | None = None) -> JobPublic:
    now = now or datetime.now(UTC)
    if _stale(row, now):
        return JobPublic(
            id=row.id, kind=row.kind, status="failed", progress=row.progress,
            message=row.message, result=None,
            error="interrupted: the server stopped while it ran; ask again to rerun it",
            created_at=row.created_at, updated_at=row.updated_at, finished_at=None,
        )  # fmt: skip
    return JobPublic.model_validate(row, from_attributes=True)


def submit(
    db: Database,
    workspace_id: int,
    kind: str,
    params: dict[str, Any],
    work: Work,
    *,
    fresh_for: float = FRESH_SECONDS,
) -> JobPublic:
    """The job for this request: a running or recent one with the same parameters, else a
    new run of ``work`` started in the background. Returns at once."""
    key = request_key(kind, params)
    for _ in range(3):  # a concurrent identical request may insert the row first
        try:
            job, start = _claim(db, workspace_id, kind, key, params, fresh_for)
        except IntegrityError:
            continue
        if start:
            threading.Thread(
                target=_run, args=(db, job.id, work), name=f"clm-job-{job.id}", daemon=True
            ).start()
        return job
    raise RuntimeError("could not record the job")  # pragma: no cover - three lost races


def _claim(
    db: Database,
    workspace_id: int,
    kind: str,
    key: str,
    params: dict[str, Any],
    fresh_for: float,
) -> tuple[JobPublic, bool]:
    now = datetime.now(UTC)
    with db.transaction() as session:
        row = session.scalars(
            select(Job).where(Job.workspace_id == workspace_id, Job.kind == kind, Job.key == key)
        ).first()
        if row is None:
            row = Job(
                workspace_id=workspace_id, kind=kind, key=key, params=params, status="queued",
                progress=0.0, created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
            return _public(row, now), True
        fresh = row.finished_at is not None and (now - row.finished_at) < timedelta(
            seconds=fresh_for
        )
        if (row.status in ("queued", "running") and not _stale(row, now)) or (
            row.status == "done" and fresh
        ):
            return _public(row, now), False
        # Rerun in the same row; the guard on the old state lets one of two racing requests win.
        cleared = dict.fromkeys(("message", "result", "error", "finished_at"))
        again = {"status": "queued", "progress": 0.0, "created_at": now, "updated_at": now}
        won = session.execute(
            update(Job)
            .where(Job.id == row.id, Job.status == row.status, Job.updated_at == row.updated_at)
            .values(**again, **cleared)
            .execution_options(synchronize_session=False)
        )
        session.expire(row)
        claimed = bool(won.rowcount)  # type: ignore[attr-defined]
        return _public(session.get_one(Job, row.id), now), claimed


def _set(db: Database, job_id: int, **values: Any) -> None:
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(updated_at=datetime.now(UTC), **values)
            .execution_options(synchronize_session=False)
        )


def _run(db: Database, job_id: int, work: Work) -> None:
    """Run ``work`` and record its end; nothing escapes the thread (a database that went away
    meanwhile is logged)."""
    try:
        _set(db, job_id, status="running")

        def progress(share: float, message: str) -> None:
            _set(db, job_id, progress=max(0.0, min(1.0, share)), message=message[:255])

        try:
            result = work(progress)
        except Exception as problem:
            log.warning("job failed", extra={"job_id": job_id}, exc_info=True)
            _set(
                db, job_id, status="failed", error=f"{type(problem).__name__}: {problem}"[:2000],
                finished_at=datetime.now(UTC),
            )  # fmt: skip
            return
        _set(
            db, job_id, status="done", progress=1.0, message=None, result=result,
            finished_at=datetime.now(UTC),
        )  # fmt: skip
    except Exception:  # the database itself failed: nothing left to record it in
        log.exception("job could not be recorded", extra={"job_id": job_id})


def get_job(db: Database, workspace_id: int, job_id: int, kind: str | None = None) -> JobPublic:
    """One job of the workspace (another workspace's is not found)."""
    with db.session() as session:
        row = session.get(Job, job_id)
        if row is None or row.workspace_id != workspace_id or (kind and row.kind != kind):
            raise NotFound(f"No job {job_id}")
        return _public(row)
