"""Scoped keys across two real server processes over one database: a revoked or expired key
is refused by the other process on its very next request (no per-process cache outlives it),
and last-used is recorded without a write per request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import ApiKey
from tests.accounts.conftest import basic
from tests.conftest import free_port


def _start(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = {**os.environ, "CLM_DATABASE_URL": url, "CLM_DATA_DIR": str(data_dir)}
    log = data_dir / f"server-{port}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "clm.web:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    return process, f"http://127.0.0.1:{port}", log


def _wait(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    # Generous: on the shared 2-core machine, importing the app can take tens of seconds.
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"server did not start: {log.read_text()}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def two_servers(db: Database, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two server processes over ``db``'s database, each with its own data directory,
    started together."""
    url = db.engine.url.render_as_string(hide_password=False)
    started = []
    try:
        for name in ("a", "b"):
            data_dir = tmp_path / name
            data_dir.mkdir()
            started.append(_start(url, data_dir))
        for process, base, log in started:
            _wait(process, base, log)
        with ExitStack() as stack:
            clients = [
                stack.enter_context(httpx.Client(base_url=base, timeout=30))
                for _, base, _ in started
            ]
            yield clients[0], clients[1]
    finally:
        for process, _, _ in started:
            _stop(process)


TRACK = {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m-1"}


@pytest.mark.slow
def test_revocation_holds_at_once_in_the_other_process(db: Database, tmp_path: Path) -> None:
    with db.transaction() as session:
        workspace = ws.create_workspace(session, "shop").id
        boss = ws.issue_key(session, "manage", workspace).key
        doomed = ws.issue_key(session, "read", workspace)
        writer = ws.issue_key(session, "write", workspace)
    with two_servers(db, tmp_path) as (first, second):
        # Both processes have seen (and, were there a cache, cached) both keys.
        for client in (first, second):
            assert client.get("/api/v1/workspace", headers=basic(doomed.key)).status_code == 200
            ok = client.post("/v1/track", headers=basic(writer.key), json=TRACK)
            assert ok.status_code == 200, ok.text
        for key_id in (doomed.id, writer.id):
            revoked = first.delete(f"/api/v1/keys/{key_id}", headers=basic(boss))
            assert revoked.status_code == 204
        # The very next request to the other process is refused.
        assert second.get("/api/v1/workspace", headers=basic(doomed.key)).status_code == 401
        refused = second.post("/v1/track", headers=basic(writer.key), json=TRACK)
        assert refused.status_code == 401
        assert first.get("/api/v1/workspace", headers=basic(doomed.key)).status_code == 401


def test_an_expired_key_is_refused_and_last_use_is_recorded_once_a_minute(
    db: Database,
) -> None:
    from clm.accounts.keys import principal_for_key

    with db.transaction() as session:
        workspace = ws.create_workspace(session, "shop").id
        soon = datetime.now(UTC) + timedelta(hours=1)
        issued = ws.issue_key(session, "read", workspace, "expiring", soon)
    first = principal_for_key(db, issued.key)
    assert first is not None and first.key_id == issued.id
    with db.session() as session:
        used = session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == issued.id))
    assert used is not None and abs((used - datetime.now(UTC)).total_seconds()) < 60
    # A second use within the minute does not write again.
    assert principal_for_key(db, issued.key) is not None
    with db.session() as session:
        again = session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == issued.id))
    assert again == used
    # Move expiry into the past: refused from the next call, no cache to wait for.
    with db.transaction() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == issued.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert principal_for_key(db, issued.key) is None


def test_keys_are_shown_once_and_stored_hashed(db: Database) -> None:
    with db.transaction() as session:
        workspace = ws.create_workspace(session, "shop").id
        issued = ws.issue_key(session, "manage", workspace)
    with db.session() as session:
        row = session.get(ApiKey, issued.id)
        assert row is not None
        import hashlib

        assert row.key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
        assert issued.key not in (row.key_hash, row.prefix, row.name)
