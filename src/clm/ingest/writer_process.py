"""The ingestion writer in a process of its own: what ``clm serve`` runs beside its HTTP workers.

SQLite takes one writer at a time, so the writer is one loop whatever the number of HTTP
processes. Inside an HTTP process, that loop was a thread sharing the GIL with the event loop
that parses the next requests: SQLite releases the GIL at every step and commit, and each time
the writer could wait a whole switch interval to take it back. The writer thread spent more
time waiting than working, and more HTTP processes only fought over SQLite's lock. Here the
HTTP workers validate and normalise, then send the good records over a Unix socket; this
process stores them with the same group commit as ``EventWriter`` (``commit_batches``) and
answers each batch once its transaction is committed: a 200 still means durable.

The socket is private (owner only, in the data folder) and a client must first send the
per-run token it was given in its environment; frames are a 4-byte length and a pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import multiprocessing
import os
import pickle
import secrets
import signal
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clm._runtime import settle_heap
from clm.errors import ClmError, Unavailable
from clm.ingest.normalize import EventRecord
from clm.ingest.service import prepare_stored
from clm.ingest.writer import commit_batches
from clm.store.engine import Database

log = logging.getLogger("clm.ingest")
_LENGTH = struct.Struct(">I")
_TOKEN_BYTES = 32
_MAX_RECORDS = 5_000  # per transaction, as EventWriter
_GATHER_RECORDS = 400
_GATHER_SECONDS = 0.002


def _frame(payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - authenticated peer


# --- the writer process ------------------------------------------------------------------


@dataclass
class _Request:
    reply: asyncio.StreamWriter
    request_id: int
    workspace_id: int
    records: list[EventRecord]


@dataclass
class _WriterLoop:
    db: Database
    token: bytes
    pending: list[_Request] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not hmac.compare_digest(await reader.readexactly(_TOKEN_BYTES), self.token):
                log.warning("refused a connection to the ingestion writer: wrong token")
                return
            while True:
                request_id, workspace_id, records = await _read_frame(reader)
                self.pending.append(_Request(writer, request_id, workspace_id, records))
                self.arrived.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the HTTP worker went away; what it sent before is still answered or stored
        finally:
            writer.close()

    async def gather(self) -> None:
        """Let a group grow for a few milliseconds before committing it.

        A commit costs about as much for a hundred events as for a thousand: each one writes
        every index page it touched and flushes the disk. The HTTP workers send batches as
        they finish parsing them, one after another, so an eager writer committed most
        batches alone. Waiting at most ``_GATHER_SECONDS`` for ``_GATHER_RECORDS`` trades a
        little latency for far fewer commits (benchmarks/ingest/README.md).
        """
        clock = asyncio.get_running_loop().time
        deadline = clock() + _GATHER_SECONDS
        await asyncio.sleep(0)  # the frames already waiting
        while sum(len(r.records) for r in self.pending) < _GATHER_RECORDS:
            remaining = deadline - clock()
            if remaining <= 0:
                return
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                return

    def store_pending(self) -> None:
        """Commit what has arrived, a group of batches per transaction, and answer each."""
        while self.pending:
            group, size = [], 0
            while self.pending and size < _MAX_RECORDS:
                group.append(self.pending.pop(0))
                size += len(group[-1].records)
            results = commit_batches(self.db, [(r.workspace_id, r.records) for r in group])
            for request, result in zip(group, results, strict=True):
                answer = (
                    (request.request_id, None, None, result.message)
                    if isinstance(result, ClmError)
                    else (request.request_id, *result, None)
                )
                if not request.reply.is_closing():
                    request.reply.write(_frame(answer))


async def _serve(database_url: str, socket_path: str, token: bytes) -> None:
    db = Database.open(database_url, run_migrations=False)  # the parent migrated
    checkpointer = db.start_checkpointer()
    loop = _WriterLoop(db, token)
    parent = os.getppid()
    stop = asyncio.Event()

    def on_sigterm() -> None:
        stop.set()
        loop.arrived.set()  # wakes the wait below at once

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    Path(socket_path).unlink(missing_ok=True)
    server = await asyncio.start_unix_server(loop.client, path=socket_path)
    settle_heap()  # each group commit makes thousands of short-lived objects
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.arrived.wait(), timeout=1.0)
            if os.getppid() != parent:  # the server was killed: nobody is left to answer
                stop.set()
            loop.arrived.clear()
            if loop.pending:
                await loop.gather()
                loop.store_pending()
                if checkpointer is not None:
                    checkpointer.poke()
        server.close()
        await asyncio.sleep(0.05)  # the last frames in flight
        loop.store_pending()
    finally:
        db.stop_checkpointer(checkpointer)
        db.dispose()
        Path(socket_path).unlink(missing_ok=True)


def _process_main(database_url: str, socket_path: str, token: bytes) -> None:
    # Ctrl-C reaches the whole process group: the writer must outlive the HTTP workers' last
    # requests, so only the parent's SIGTERM (after the workers have drained) stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.umask(0o077)  # the socket is created private
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(database_url, socket_path, token))


class WriterProcess:
    """The parent's handle: starts the writer, restarts it if it dies, stops it last."""

    def __init__(self, database_url: str, socket_path: Path) -> None:
        self.database_url = database_url
        self.socket_path = socket_path
        self.token = secrets.token_bytes(_TOKEN_BYTES)
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._stopping = False
        self._watchdog: threading.Thread | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What an HTTP worker needs to reach the writer (``Settings.ingest_socket``/``_token``)."""
        return {"CLM_INGEST_SOCKET": str(self.socket_path), "CLM_INGEST_TOKEN": self.token.hex()}

    def start(self, timeout: float = 60.0) -> None:
        self._launch(timeout)
        self._watchdog = threading.Thread(target=self._watch, name="clm-writer-watch", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        """SIGTERM: the writer answers what it has, then exits."""
        self._stopping = True
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=60)

    def _launch(self, timeout: float) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._process = self._context.Process(
            target=_process_main,
            args=(self.database_url, str(self.socket_path), self.token),
            name="clm-ingest-writer",
            daemon=True,
        )
        self._process.start()
        deadline = time.monotonic() + timeout
        while not _accepts(self.socket_path):
            if not self._process.is_alive() or time.monotonic() > deadline:
                raise ClmError("The ingestion writer process did not start")
            time.sleep(0.05)

    def _watch(self) -> None:
        while not self._stopping:
            self._process.join()  # waits in the kernel: no GIL taken from the server
            if self._stopping:
                return
            log.error(
                "the ingestion writer exited (code %s); restarting it", self._process.exitcode
            )
            try:
                self._launch(timeout=60)
            except ClmError:
                log.exception("the ingestion writer could not be restarted")
                time.sleep(1)


def socket_path_in(folder: Path) -> Path:
    """Where the writer of this server listens: in ``folder``, unless that path would pass
    the ~108 bytes a Unix socket address may hold; then in a private temporary folder."""
    path = folder / f"ingest-{os.getpid()}.sock"
    if len(os.fsencode(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="clm-")) / "ingest.sock"  # mode 0700


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


# --- the HTTP worker's end ----------------------------------------------------------------


@dataclass
class _Link:
    """One connection to the writer and the batches awaiting its answers."""

    writer: asyncio.StreamWriter
    waiting: dict[int, asyncio.Future[tuple[int, int]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None


class RemoteWriter:
    """Sends batches to the writer process and awaits each one's commit; one connection per
    worker, shared by all its requests (replies carry the request id)."""

    def __init__(self, socket_path: str, token: bytes, dialect: str) -> None:
        self.socket_path = socket_path
        self.token = token
        self.dialect = dialect
        self._ids = itertools.count(1)
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()

    async def store(self, workspace_id: int, records: list[EventRecord]) -> tuple[int, int]:
        """(stored, duplicates), once committed by the writer process."""
        if not records:
            return 0, 0
        prepare_stored(records, self.dialect)  # here, in parallel with the other workers
        link = await self._connection()
        request_id = next(self._ids)
        done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        link.waiting[request_id] = done
        link.writer.write(_frame((request_id, workspace_id, records)))
        return await done

    async def aclose(self) -> None:
        if self._link is not None:
            self._link.writer.close()
            self._link = None

    async def _connection(self) -> _Link:
        async with self._connecting:
            if self._link is None or self._link.writer.is_closing():
                try:
                    reader, writer = await asyncio.open_unix_connection(self.socket_path)
                except OSError as exc:
                    raise _unavailable() from exc
                writer.write(self.token)
                link = self._link = _Link(writer)
                # Kept on the link: the loop holds only a weak reference to a task.
                link.reader = asyncio.get_running_loop().create_task(
                    self._read_replies(reader, link)
                )
            return self._link

    async def _read_replies(self, reader: asyncio.StreamReader, link: _Link) -> None:
        try:
            while True:
                request_id, stored, duplicates, error = await _read_frame(reader)
                done = link.waiting.pop(request_id, None)
                if done is None or done.done():
                    continue
                if error is None:
                    done.set_result((stored, duplicates))
                else:
                    done.set_exception(ClmError(error))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            link.writer.close()
            if self._link is link:
                self._link = None
            # What was in flight may or may not be stored; it is not acknowledged, so the
            # sender retries, and message ids make the retry idempotent.
            for done in link.waiting.values():
                if not done.done():
                    done.set_exception(_unavailable())
            link.waiting.clear()


def _unavailable() -> Unavailable:
    return Unavailable("The event writer is not reachable; nothing of this batch was acknowledged")
