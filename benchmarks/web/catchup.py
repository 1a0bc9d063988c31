"""How long an ingestion write waits for SQLite's write lock while the customer list's
background catch-up (``ensure_fresh``) rewrites 100,000 customers' stored rows.

    PYTHONPATH=src .venv/bin/python benchmarks/web/catchup.py --customers 100000 \
        --events 2000000 --data /tmp/clm-web-bench

The workspace is benchmarks/web's (``run.py``'s builder, kept in ``--data``). Its rows are
built once into a base copy (``catchup-base-*.sqlite``, ``rebuild_state``); each run copies
the base (the shared build is never changed), appends an import of ``--import-events`` page
views spread over the customers (one each by default: every row is rewritten), and makes one
read: ``ensure_fresh`` starts the catch-up on a thread, as ``clm serve`` does. Meanwhile a
writer thread of the same process, as the server's ingestion writer is, makes one small write
transaction every ``--every`` ms (``db.transaction()``, one cursor row updated: the wait for the
lock and nothing else; ``--writer ingest`` ingests one event instead) and times each, with
a WAL checkpointer thread running as beside the server's ingestion writer. The
same writes are first timed on an idle database. Printed: the catch-up's wall time, and the
writes' p50, p99 and max, with the load (1 min) before and after.

To compare two versions of the code, run the same command with ``PYTHONPATH`` pointing at
each checkout's ``src``: the base copy and the import are the same.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from clm.ingest import ingest
from clm.lifecycle.current_state import ensure_fresh, rebuild_state, settle_refreshes
from clm.store.engine import Database
from clm.store.models import EngageCursor

HERE = Path(__file__).parent
WRITER = "bench.catchup.writer"  # a cursor row of its own: the writes touch nothing else


def _web_build() -> Any:
    spec = importlib.util.spec_from_file_location("web_bench", HERE / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def _copy(source: Path, target: Path) -> None:
    """A consistent copy (SQLite's backup API: the WAL included), replacing ``target``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


def _append_import(path: Path, workspace_id: int, customers: int, events: int) -> None:
    """``events`` page views, customer 1, 2, ... in turn, written straight into the file."""
    con = sqlite3.connect(path)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    ts = int(time.time())
    con.executemany(
        "INSERT INTO events (workspace_id, identity_id, message_id, type, name, user_id,"
        " timestamp, ts, received_at, channel, revenue, properties, context)"
        " VALUES (?, ?, ?, 'page', NULL, ?, ?, ?, ?, NULL, NULL, '{}', '{}')",
        [
            (workspace_id, c, f"import-{n}", f"u{c}", stamp, ts, stamp)
            for n, c in ((n, n % customers + 1) for n in range(events))
        ],
    )
    con.commit()
    con.close()


class Writer:
    """Small write transactions in a loop, each timed (ms), until stopped."""

    def __init__(self, db: Database, workspace_id: int, every: float, kind: str) -> None:
        self.db, self.workspace_id, self.every, self.kind = db, workspace_id, every, kind
        self.waits: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-writer", daemon=True)
        self._n = 0

    def _write(self) -> None:
        self._n += 1
        if self.kind == "ingest":
            message = {"type": "track", "userId": f"u{self._n % 1000 + 1}", "event": "Viewed",
                       "messageId": f"writer-{time.time_ns()}",
                       "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
            ingest(self.db, self.workspace_id, [message])
            return
        with self.db.transaction() as session:
            session.execute(
                update(EngageCursor)
                .where(
                    EngageCursor.workspace_id == self.workspace_id,
                    EngageCursor.consumer == WRITER,
                )
                .values(last_event_id=EngageCursor.last_event_id + 1)
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self._write()
            self.waits.append((time.perf_counter() - started) * 1000)
            self._stop.wait(self.every / 1000)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _summary(waits: list[float]) -> str:
    ordered = sorted(waits)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (
        f"{len(ordered)} writes: p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
        f"max {ordered[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/clm-web-bench"))
    parser.add_argument("--import-events", type=int, default=None, help="default: --customers")
    parser.add_argument("--every", type=float, default=20.0, help="ms between writes")
    parser.add_argument("--writer", choices=("transaction", "ingest"), default="transaction")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of writes, idle")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    built = args.data / f"web-{args.customers}-{args.events}.sqlite"
    meta = built.with_suffix(".json")
    if not meta.exists():
        built.unlink(missing_ok=True)
        started = time.perf_counter()
        workspace_id, key = _web_build()(built, args.customers, args.events)
        meta.write_text(json.dumps({"key": key, "workspace_id": workspace_id}))
        print(f"built {built} in {time.perf_counter() - started:.0f} s")
    workspace_id = int(json.loads(meta.read_text()).get("workspace_id", 1))
    base = args.data / f"catchup-base-{args.customers}-{args.events}.sqlite"
    if not base.exists():  # a copy of our own (migrated), its rows built once
        _copy(built, base.with_suffix(".tmp"))
        db = Database.open(f"sqlite:///{base.with_suffix('.tmp')}")
        report = rebuild_state(db, workspace_id)
        db.dispose()
        base.with_suffix(".tmp").rename(base)
        print(f"base rows built: {report.customers:,} customers in {report.seconds:.0f} s")
    run = args.data / "catchup-run.sqlite"
    _copy(base, run)
    imported = args.customers if args.import_events is None else args.import_events
    _append_import(run, workspace_id, args.customers, imported)
    db = Database.open(f"sqlite:///{run}")  # our copy: migrated as any file we create
    checkpointer = db.start_checkpointer()  # as the server's ingestion writer runs one
    with db.transaction() as session:
        session.add(EngageCursor(workspace_id=workspace_id, consumer=WRITER, last_event_id=0))
    print(f"{imported:,} events imported past the rows' cursor; writer: {args.writer}, "
          f"every {args.every:g} ms")  # fmt: skip
    with Writer(db, workspace_id, args.every, args.writer) as idle:
        time.sleep(args.idle)
    print(f"idle: {_summary(idle.waits)}")
    print(f"load (1 min) before: {os.getloadavg()[0]:.1f}")
    with Writer(db, workspace_id, args.every, args.writer) as busy:
        time.sleep(0.5)
        started = time.perf_counter()
        assert not ensure_fresh(db, workspace_id)  # a background catch-up, as a read starts it
        settle_refreshes(db, timeout=3600)
        seconds = time.perf_counter() - started
    assert ensure_fresh(db, workspace_id)
    print(f"catch-up of {args.customers:,} customers: {seconds:.1f} s wall")
    print(f"during the catch-up: {_summary(busy.waits)}")
    print(f"load (1 min) after: {os.getloadavg()[0]:.1f}")
    db.stop_checkpointer(checkpointer)
    db.dispose()


if __name__ == "__main__":
    main()
