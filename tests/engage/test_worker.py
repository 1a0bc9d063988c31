"""The huey worker: at-least-once delivery that survives a kill -9 mid-batch."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clm.config import get_settings
from clm.engage import repository as repo
from clm.engage.delivery import outbox
from clm.engage.delivery.worker import make_queue, next_due
from clm.engage.schemas import Content, EmailProvider, Policy, SendRequest, WebhookProvider
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.models import Customer, EngageMessage
from tests.conftest import make_tenant
from tests.engage.conftest import SECRET, HttpReceiver, SmtpSink, add_customer

MESSAGES = 20


def _start_worker(
    db_url: str, queue: Path, log: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLM_SECRET_KEY": SECRET,
        "CLM_ENV": "test",
        "CLM_QUEUE_URL": str(queue),
        "CLM_ENGAGE_LEASE_SECONDS": "1",
        "CLM_ENGAGE_BATCH_SIZE": "4",
        **(extra or {}),
    }
    code = f"from clm.engage.delivery.worker import run_worker; run_worker({db_url!r}, workers=1)"
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=out)


def _sent(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).where(EngageMessage.status == "sent")) or 0)


def _wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_killing_the_worker_mid_batch_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, http_receiver: HttpReceiver, monkeypatch: object
) -> None:
    db_url = f"sqlite:///{tmp_path / 'clm.sqlite'}"
    db = Database.open(db_url)
    queue = tmp_path / "queue.sqlite"
    try:
        tenant = make_tenant(db)
        with db.transaction() as session:
            repo.set_policy(session, tenant.id, Policy(quiet_hours=None, caps=[]))
            repo.set_provider(
                session, tenant.id, WebhookProvider(url=http_receiver.url, secret="s")
            )
        requests = []
        for i in range(MESSAGES):
            cid = add_customer(db, tenant.id, f"u{i}")
            with db.transaction() as session:
                repo.set_consent(session, tenant.id, cid, "webhook", "marketing", True)
            requests.append(
                SendRequest(
                    customer_id=cid,
                    channel="webhook",
                    content=Content(body={"n": str(i)}),
                    idempotency_key=f"kill-{i}",
                )
            )
        http_receiver.delay = 0.1  # slow receiver: the kill lands mid-batch
        outbox.send(db, tenant.id, requests, now=datetime.now(UTC))
        os.environ["CLM_QUEUE_URL"] = str(queue)
        get_settings.cache_clear()
        try:
            make_queue().drain()  # what a producer does after its commit
        finally:
            del os.environ["CLM_QUEUE_URL"]
            get_settings.cache_clear()

        log = tmp_path / "worker.log"
        worker = _start_worker(db_url, queue, log)
        try:
            assert _wait(lambda: len(http_receiver.requests) >= 6, 20), log.read_text()
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        assert _sent(db) < MESSAGES  # it really died mid-way
        with db.session() as session:
            in_flight = session.scalar(
                select(func.count()).where(EngageMessage.status == "sending")
            )
        assert in_flight, "some messages were leased by the killed worker"

        restarted = _start_worker(db_url, queue, log)
        try:
            assert _wait(lambda: _sent(db) == MESSAGES, 30), log.read_text()
        finally:
            restarted.send_signal(signal.SIGINT)
            restarted.wait(timeout=20)
        keys = [r.headers["Idempotency-Key"] for r in http_receiver.requests]
        # Nothing lost; anything sent twice carried the same key, so it was acted on once.
        assert set(http_receiver.acted) == {f"kill-{i}" for i in range(MESSAGES)}
        assert len(keys) >= MESSAGES
        assert next_due(db) is None
    finally:
        db.dispose()


def test_the_worker_rewards_referrals_and_expires_points_on_its_own(tmp_path: Path) -> None:
    from clm.engage.referrals import ledger
    from clm.engage.referrals import service as referrals
    from clm.engage.referrals.earning import EarningRule, PointsProgram, set_points_program
    from tests.engage.test_referrals import PROGRAM, T0, order, referred

    db_url = f"sqlite:///{tmp_path / 'clm.sqlite'}"
    db = Database.open(db_url)
    try:
        ws = make_tenant(db).id
        referrals.set_program(db, ws, PROGRAM)
        ada = add_customer(db, ws, "ada")
        [code] = referrals.issue_codes(db, ws, T0, stages=[])
        set_points_program(db, ws, PointsProgram(rules=[EarningRule(points_per_unit=1)]))
        referred(db, ws, code.code, "bob")  # an order of 60.00 in 2024: the window is over
        order(db, ws, "ada", "ada-1", 20.0, T0)  # 20 points, lapsed after 365 days
        worker = _start_worker(db_url, tmp_path / "queue.sqlite", tmp_path / "worker.log")
        try:
            # Nobody calls process() or expire(): the worker's start-up tick does.
            assert _wait(
                lambda: [r.status for r in referrals.list_referrals(db, ws)] == ["rewarded"], 60
            ), (tmp_path / "worker.log").read_text()
            assert _wait(lambda: len(ledger.statement(db, ws, ada)) == 3, 30)
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=20)
        entries = [(e.kind, e.amount) for e in ledger.statement(db, ws, ada)]
        # Earned 20 and lost them to expiry (in either order within one tick), rewarded 300.
        assert sorted(entries) == [("earn", 20), ("expire", -20), ("reward", 300)]
        assert ledger.balance(db, ws, ada) == 300
    finally:
        db.dispose()


EMAILS = 240
CONNECTIONS = 2


def _message_ids(sink: SmtpSink) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in sink.messages)


@pytest.mark.slow
def test_a_killed_worker_resends_at_most_the_emails_in_flight(
    db: Database, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """kill -9 twice mid-batch; each crash may re-send only what was on the wire (one per
    SMTP connection), and every email arrives. Before, a batch was marked sent only at its
    end, so a crash re-sent everything the batch had already delivered."""
    tenant = make_tenant(db)
    with db.transaction() as session:
        repo.set_policy(session, tenant.id, Policy(quiet_hours=None, caps=[]))
        repo.set_provider(
            session,
            tenant.id,
            EmailProvider(host=smtp_sink.host, port=smtp_sink.port, connections=CONNECTIONS),
        )
    ingest(
        db,
        tenant.id,
        [
            {"type": "identify", "userId": f"u{i}", "messageId": f"id-{i}",
             "traits": {"email": f"u{i}@example.com"}}
            for i in range(EMAILS)
        ],
    )  # fmt: skip
    with db.session() as session:
        ids = list(session.scalars(select(Customer.id).where(Customer.workspace_id == tenant.id)))
    requests = [
        SendRequest(
            customer_id=cid,
            channel="email",
            purpose="transactional",
            category="receipt",
            content=Content(subject="Your receipt", text="Thanks"),
            idempotency_key=f"crash-{cid}",
        )
        for cid in ids
    ]
    outbox.send(db, tenant.id, requests, now=datetime.now(UTC))
    smtp_sink.collector.delay = 0.02  # a slow server: the kills land mid-batch
    db_url = db.engine.url.render_as_string(hide_password=False)
    queue, log = tmp_path / "queue.sqlite", tmp_path / "worker.log"
    extra = {"CLM_ENGAGE_BATCH_SIZE": "100", "CLM_ENGAGE_LEASE_SECONDS": "2"}

    crashes = 0
    for kill_after in (40, 140):  # mid first batch, then mid second
        worker = _start_worker(db_url, queue, log, extra)
        try:
            reached = _wait(lambda n=kill_after: len(smtp_sink.messages) >= n, 60)  # type: ignore[misc]
            assert reached, log.read_text()
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        crashes += 1
        assert _sent(db) < EMAILS, "the kill must land before the end"
    restarted = _start_worker(db_url, queue, log, extra)
    try:
        assert _wait(lambda: _sent(db) == EMAILS, 90), log.read_text()
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=20)

    delivered = _message_ids(smtp_sink)
    # Message-ID is the idempotency key's hash (RFC 5322 §3.6.4: one id per message).
    expected = {
        f"<{hashlib.sha256(f'crash-{cid}'.encode()).hexdigest()[:32]}@clm.engage>" for cid in ids
    }
    assert set(delivered) == expected  # nothing lost...
    duplicates = sum(count - 1 for count in delivered.values())
    # ...and at most one duplicate per send in flight at each crash.
    assert duplicates <= crashes * CONNECTIONS, delivered.most_common(5)
