"""Live by default: a purchase sent with the Segment SDK to a running ``clm serve`` moves the
customer's stage and delivers the welcome email from a running ``clm worker``, with nobody
running ``clm lifecycle tick`` or ``clm playbook tick``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.schemas import EmailProvider, Policy
from clm.lifecycle import stage_at
from clm.store.engine import Database
from clm.store.models import Customer, Identity
from tests.conftest import Tenant, free_port
from tests.engage.conftest import SECRET, SmtpSink

pytestmark = pytest.mark.slow


def live_env(data_dir: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CLM_DATABASE_URL": url,
        "CLM_DATA_DIR": str(data_dir),
        "CLM_QUEUE_URL": str(data_dir / "queue.sqlite"),
        "CLM_SECRET_KEY": SECRET,
        "CLM_ENV": "test",
    }


def start_server(data_dir: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    """``clm serve`` as a user runs it (it nudges the worker after storing events)."""
    with (data_dir / "server.log").open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "clm", "serve", "--port", str(port)],
            env=live_env(data_dir, url),
            stdout=sink,
            stderr=sink,
        )
    up = wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), 90)
    if not up:
        process.kill()
        process.wait()
        raise RuntimeError(f"server did not start: {(data_dir / 'server.log').read_text()}")
    return process


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def start_worker(data_dir: Path, url: str) -> subprocess.Popen[bytes]:
    with (data_dir / "worker.log").open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "clm", "worker", "--workers", "2"],
            env=live_env(data_dir, url),
            stdout=sink,
            stderr=sink,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(condition: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    return None


def customer_of(db: Database, workspace_id: int, user_id: str) -> int | None:
    with db.session() as session:
        found = session.scalar(
            select(Identity.customer_id).where(
                Identity.workspace_id == workspace_id,
                Identity.kind == "user_id",
                Identity.value == user_id,
            )
        )
    return None if found is None else int(found)


def _stage(db: Database, workspace_id: int, customer_id: int) -> str | None:
    found = stage_at(db, workspace_id, customer_id)
    return None if found is None else found.stage


@pytest.fixture
def live_shop(db: Database, tenant: Tenant, smtp_sink: SmtpSink) -> Iterator[Tenant]:
    """A workspace with the welcome playbook (no hold-out) and email to the loopback sink."""
    with db.transaction() as session:
        repo.set_provider(
            session, tenant.id, EmailProvider(port=smtp_sink.port, sender="shop@example.test")
        )
        repo.set_policy(
            session, tenant.id, Policy(quiet_hours=None, caps=[], marketing_requires_opt_in=False)
        )
    book = pb.shipped_playbook("welcome").model_copy(update={"holdout": 0.0})
    pb.apply_playbook(db, tenant.id, book)
    yield tenant


def test_a_purchase_through_the_sdk_moves_the_stage_and_sends_the_welcome(
    db: Database,
    live_shop: Tenant,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    port = free_port()
    server = start_server(tmp_path, url, port)
    worker = start_worker(tmp_path, url)
    try:
        errors: list[object] = []
        client = Client(
            live_shop.write_key,
            host=f"http://127.0.0.1:{port}",
            sync_mode=True,
            on_error=lambda error, batch: errors.append(error),
            max_retries=0,
        )
        client.identify("ada", {"email": "ada@example.test", "first_name": "Ada"})
        client.track("ada", "Order Completed", {"order_id": "o-1", "revenue": 42.0})
        client.flush()
        assert errors == []
        customer = wait_for(lambda: customer_of(db, live_shop.id, "ada"), 10)
        assert isinstance(customer, int)
        moved = wait_for(lambda: _stage(db, live_shop.id, customer) == "conversion", 60)
        assert moved, (tmp_path / "worker.log").read_text()
        welcomed = wait_for(lambda: smtp_sink.messages, 60)
        assert welcomed, (tmp_path / "worker.log").read_text()
        [message] = smtp_sink.messages
        assert message["To"] == "ada@example.test"
        assert message["Subject"] == "Welcome aboard, Ada!"
    finally:
        stop(worker)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
    with db.session() as session:
        assert session.get(Customer, customer) is not None
