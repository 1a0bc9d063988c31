"""The ingestion writer process ``clm serve`` runs: batches from many HTTP workers committed
together, each answered only once committed, over a private socket, restarted if it dies."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from clm.errors import Unavailable
from clm.ingest.normalize import EventRecord
from clm.ingest.service import ingest, parse_messages
from clm.ingest.writer_process import RemoteWriter, WriterProcess
from clm.store.engine import Database
from tests.conftest import make_tenant

RECEIVED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _messages(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {"type": "track", "userId": f"u{i % 7}", "event": "Order Completed",
         "messageId": f"{prefix}{i}", "timestamp": "2026-10-01T08:30:00.123456Z",
         "properties": {"revenue": i, "channel": "email"}, "context": {"ip": "203.0.113.9"}}
        for i in range(count)
    ]  # fmt: skip


def _records(messages: list[dict[str, Any]]) -> list[EventRecord]:
    records, rejected = parse_messages(messages, RECEIVED)
    assert rejected == []
    return records


@pytest.fixture
def writer(db: Database, tmp_path: Path) -> Iterator[WriterProcess]:
    process = WriterProcess(
        db.engine.url.render_as_string(hide_password=False), tmp_path / "w.sock"
    )
    process.start()
    yield process
    process.stop()


def _remote(writer: WriterProcess, db: Database, token: bytes | None = None) -> RemoteWriter:
    return RemoteWriter(str(writer.socket_path), token or writer.token, db.dialect)


def _rows(db: Database, workspace: int) -> list[tuple[Any, ...]]:
    with db.session() as session:
        return [
            tuple(row)
            for row in session.execute(
                text(
                    "SELECT message_id, type, name, user_id, timestamp, ts, received_at, "
                    "channel, revenue, properties, context FROM events "
                    "WHERE workspace_id = :w ORDER BY message_id"
                ),
                {"w": workspace},
            )
        ]


def test_batches_from_several_workers_are_stored_once_as_the_thread_writer_stores_them(
    db: Database, writer: WriterProcess
) -> None:
    workspace = make_tenant(db).id
    reference = make_tenant(db, "reference").id

    async def send() -> tuple[list[tuple[int, int]], tuple[int, int]]:
        workers = [_remote(writer, db) for _ in range(3)]
        results = await asyncio.gather(*(
            worker.store(workspace, _records(_messages(f"w{i}-b{j}-", 50)))
            for i, worker in enumerate(workers) for j in range(4)
        ))  # fmt: skip
        again = await workers[0].store(workspace, _records(_messages("w0-b0-", 50)))
        for worker in workers:
            await worker.aclose()
        return list(results), again

    results, again = asyncio.run(send())
    assert results == [(50, 0)] * 12
    assert again == (0, 50)  # a retry of a committed batch adds nothing
    for i in range(3):
        for j in range(4):
            ingest(db, reference, _messages(f"w{i}-b{j}-", 50), received_at=RECEIVED)
    stored, expected = _rows(db, workspace), _rows(db, reference)
    assert len(stored) == 600
    assert stored == expected  # the columns prepared in the worker are the usual ones


def test_identify_traits_and_identities_cross_to_the_writer(
    db: Database, writer: WriterProcess
) -> None:
    workspace = make_tenant(db).id
    messages = [
        {"type": "identify", "anonymousId": "a-1", "userId": "ann", "messageId": "i1",
         "traits": {"email": "Ann@Example.com", "plan": "pro"}},
        {"type": "track", "anonymousId": "a-1", "event": "Seen", "messageId": "t1"},
    ]  # fmt: skip

    async def send() -> tuple[int, int]:
        remote = _remote(writer, db)
        try:
            return await remote.store(workspace, _records(messages))
        finally:
            await remote.aclose()

    assert asyncio.run(send()) == (2, 0)
    with db.session() as session:
        customers = session.execute(
            text("SELECT user_id, email, traits FROM customers WHERE workspace_id = :w"),
            {"w": workspace},
        ).all()
        kinds = session.execute(
            text("SELECT kind, value FROM identities WHERE workspace_id = :w ORDER BY kind"),
            {"w": workspace},
        ).all()
    assert [(c.user_id, c.email) for c in customers] == [("ann", "ann@example.com")]
    traits = customers[0].traits
    assert "pro" in (traits if isinstance(traits, str) else str(traits))
    assert [tuple(k) for k in kinds] == [
        ("anonymous_id", "a-1"), ("email", "ann@example.com"), ("user_id", "ann"),
    ]  # fmt: skip


def test_the_socket_is_private_and_a_wrong_token_stores_nothing(
    db: Database, writer: WriterProcess
) -> None:
    workspace = make_tenant(db).id
    assert stat.S_IMODE(os.stat(writer.socket_path).st_mode) & 0o077 == 0  # owner only

    async def send() -> None:
        remote = _remote(writer, db, token=b"x" * len(writer.token))
        try:
            await remote.store(workspace, _records(_messages("bad-", 3)))
        finally:
            await remote.aclose()

    with pytest.raises(Unavailable):
        asyncio.run(send())
    assert _rows(db, workspace) == []


def test_a_killed_writer_is_restarted_and_the_next_batch_is_stored(
    db: Database, writer: WriterProcess
) -> None:
    workspace = make_tenant(db).id
    first_pid = writer._process.pid
    os.kill(first_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while writer._process.pid == first_pid or not writer._process.is_alive():
        assert time.monotonic() < deadline, "the writer was not restarted"
        time.sleep(0.05)

    async def send() -> tuple[int, int]:
        for _ in range(200):  # until the new process listens
            remote = _remote(writer, db)
            try:
                return await remote.store(workspace, _records(_messages("after-", 5)))
            except Unavailable:
                await asyncio.sleep(0.05)
            finally:
                await remote.aclose()
        raise AssertionError("the restarted writer never answered")

    assert asyncio.run(send()) == (5, 0)
    assert len(_rows(db, workspace)) == 5


def test_the_socket_goes_to_a_private_temporary_folder_when_the_data_folder_is_too_deep(
    tmp_path: Path,
) -> None:
    from clm.ingest.writer_process import socket_path_in

    assert socket_path_in(tmp_path).parent == tmp_path
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path_in(deep)
    assert len(os.fsencode(path)) < 100
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
