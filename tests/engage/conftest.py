"""Engagement fixtures: a real SMTP server and a real HTTP receiver on loopback, customers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from clm.config import get_settings
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.models import Customer
from tests.conftest import free_port

SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def engage_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("CLM_SECRET_KEY", SECRET)
    monkeypatch.setenv("CLM_ENV", "test")
    monkeypatch.setenv("CLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLM_PUBLIC_URL", "http://clm.test")
    monkeypatch.setenv("CLM_ENGAGE_NOTIFY", "false")
    # The receivers here are plain http on loopback: the operator's explicit allowance.
    monkeypatch.setenv("CLM_OUTBOUND_ALLOW_HTTP", "true")
    monkeypatch.setenv("CLM_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class _Collector:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.delay = 0.0  # seconds before accepting each message (a slow server)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    host: str
    port: int
    collector: _Collector

    @property
    def messages(self) -> list[EmailMessage]:
        with self.collector.lock:
            return list(self.collector.messages)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    collector = _Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSink("127.0.0.1", port, collector)
    finally:
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Records requests; answers with ``statuses`` in turn (then 200); honours Idempotency-Key
    the way a careful receiver does: a repeated key is acknowledged but not acted on twice."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    acted: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def json(self, index: int) -> Any:
        return json.loads(self.requests[index].body)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    port = free_port()
    receiver = HttpReceiver(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if receiver.delay:
                import time

                time.sleep(receiver.delay)
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                key = self.headers.get("Idempotency-Key") or self.headers.get(
                    "I-Twilio-Idempotency-Token"
                )
                if status < 300 and key:
                    receiver.acted[key] = receiver.acted.get(key, 0) + 1
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"sid": "SM123"}')

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def add_customer(
    db: Database,
    workspace_id: int,
    user_id: str,
    *,
    email_address: str | None = None,
    traits: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """A customer identified by ``user_id`` (with an email by default); returns its id."""
    all_traits = {"email": email_address or f"{user_id}@example.com", **(traits or {})}
    ingest(
        db,
        workspace_id,
        [
            {
                "type": "identify",
                "userId": user_id,
                "messageId": f"identify-{user_id}",
                "traits": all_traits,
                "timestamp": (at or datetime(2024, 1, 1, tzinfo=UTC)).isoformat(),
            }
        ],
    )
    with db.session() as session:
        from sqlalchemy import select

        found = session.scalar(
            select(Customer.id).where(
                Customer.workspace_id == workspace_id, Customer.user_id == user_id
            )
        )
    assert found is not None
    return int(found)
