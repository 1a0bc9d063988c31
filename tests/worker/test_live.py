"""One live pass: a deadline moves the stage exactly when it falls due, says when that is in
advance, and the playbook it triggers sends in the same pass (real SMTP on loopback)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clm.analytics import REPORTS
from clm.config import Settings
from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.schemas import EmailProvider, Policy
from clm.ingest.service import ingest
from clm.lifecycle import stage_at
from clm.store.engine import Database
from clm.worker import live_pass
from tests.engage.conftest import SmtpSink
from tests.late_writer import late_event, settle_quickly
from tests.lifecycle.logs import DAY, at, message, new_workspace

SETTINGS = Settings()
GOODBYE = {
    "name": "goodbye",
    "trigger": {"type": "stage_changed", "to": "churned"},
    "holdout": 0.0,
    "steps": [
        {
            "id": "bye",
            "type": "send",
            "category": "winback",
            "content": {"subject": "We miss you", "text": "Come back soon."},
        }
    ],
}


def _shop(db: Database, sink: SmtpSink) -> int:
    workspace_id = new_workspace(db)
    with db.transaction() as session:
        repo.set_provider(session, workspace_id, EmailProvider(port=sink.port, sender="s@x.test"))
        repo.set_policy(
            session,
            workspace_id,
            Policy(quiet_hours=None, caps=[], marketing_requires_opt_in=False),
        )
    pb.apply_playbook(db, workspace_id, pb.parse_playbook(GOODBYE))
    return workspace_id


def test_a_lapse_happens_at_its_due_time_and_triggers_its_playbook(
    sqlite_db: Database, smtp_sink: SmtpSink
) -> None:
    db = sqlite_db
    workspace_id = _shop(db, smtp_sink)
    ingest(
        db,
        workspace_id,
        [
            message("ada", 0, "a1", kind="identify", email="ada@example.test"),
            message("ada", DAY, "a2", "Order Completed", revenue=30),
        ],
    )
    # classic: churned 365 days after the last purchase (worked out from the shipped model).
    churn_at = at(DAY + 365 * DAY)

    first = live_pass(db, workspace_id, now=at(2 * DAY), settings=SETTINGS)
    customer = stage_at(db, workspace_id, 1, at(2 * DAY))
    assert customer is not None and customer.stage == "conversion"
    assert first.stages.events_written == 2  # acquisition and conversion, announced
    assert first.health_rescored == 1  # her new events changed health's inputs
    # Known in advance, so the worker wakes exactly then: the first of her health score's next
    # change by time alone (a quiet customer's score decays) and the churn deadline.
    assert first.next_due is not None and first.next_due <= churn_at
    health_due = first.next_due
    if health_due < churn_at:
        before = live_pass(db, workspace_id, now=health_due - timedelta(seconds=1))
        assert before.health_rescored == 0  # not yet due, nothing new: nobody re-scored
        on_time = live_pass(db, workspace_id, now=health_due, settings=SETTINGS)
        assert (on_time.health_rescored, on_time.stages.events_written) == (1, 0)

    early = live_pass(db, workspace_id, now=churn_at - timedelta(seconds=1), settings=SETTINGS)
    assert early.stages.events_written == 0 and smtp_sink.messages == []

    due = live_pass(db, workspace_id, now=churn_at, settings=SETTINGS)
    assert due.stages.events_written == 1
    assert (due.enrolled, due.sent) == (1, 1)
    [mail] = smtp_sink.messages
    assert (mail["To"], mail["Subject"]) == ("ada@example.test", "We miss you")
    assert due.next_due is None or due.next_due > churn_at

    again = live_pass(db, workspace_id, now=churn_at + timedelta(hours=1), settings=SETTINGS)
    assert (again.stages.events_written, again.sent) == (0, 0)  # idempotent
    assert len(smtp_sink.messages) == 1


def test_a_large_import_makes_a_pass_ask_for_a_refit_once(sqlite_db: Database) -> None:
    db = sqlite_db
    workspace_id = new_workspace(db)
    settings = Settings(live_predict_after_events=3)
    ingest(db, workspace_id, [message("a", 0, "a1", "Order Completed", revenue=1)])
    assert not live_pass(db, workspace_id, now=at(DAY), settings=settings).refit_due  # 1 < 3
    ingest(
        db,
        workspace_id,
        [message("b", i, f"b{i}", "Order Completed", revenue=1) for i in range(2)],
    )
    # 3 customer events since the worker started counting (CLM's own announcements excluded).
    assert live_pass(db, workspace_id, now=at(DAY), settings=settings).refit_due
    assert not live_pass(db, workspace_id, now=at(DAY), settings=settings).refit_due  # counted


def test_each_saved_segment_is_counted_on_the_first_pass_of_a_day(sqlite_db: Database) -> None:
    from clm.lifecycle.conditions import Condition
    from clm.lifecycle.saved_segments import SegmentCreate, create_segment, sizes

    db = sqlite_db
    workspace_id = new_workspace(db)
    ingest(db, workspace_id, [message("a", 0, "a1", "Order Completed", revenue=1)])
    buyers = SegmentCreate(name="seen", conditions=[Condition(attr="last_seen_days", op="gte",
                                                              value=0)])  # fmt: skip
    segment = create_segment(db, workspace_id, buyers, "test", now=at(0))
    live_pass(db, workspace_id, now=at(DAY), settings=SETTINGS)
    ingest(db, workspace_id, [message("b", DAY, "b1", "Order Completed", revenue=1)])
    live_pass(db, workspace_id, now=at(DAY + 60), settings=SETTINGS)  # the same day: not again
    live_pass(db, workspace_id, now=at(2 * DAY), settings=SETTINGS)
    days = [(p.day, p.size) for p in sizes(db, workspace_id, segment.id).points]
    assert days == [(at(0).date(), 1), (at(DAY).date(), 1), (at(2 * DAY).date(), 2)]


def test_a_pass_of_the_worker_stores_the_overviews_readings(db: Database) -> None:
    """The live loop keeps the overview's readings without cron: after a pass, its readings
    task stores each default reading, and a restarted server answers from them."""
    from huey import MemoryHuey  # type: ignore[import-untyped]

    from clm.analytics.retention_trend import funnel_summary
    from clm.engage.delivery.worker import Queue
    from clm.store.models import OverviewReading
    from clm.worker.tasks import LiveQueue
    from tests.analytics.test_trends import _write

    workspace_id, _ = _write(db)
    url = db.engine.url.render_as_string(hide_password=False)
    live = LiveQueue(Queue(MemoryHuey("test", immediate=True), url), Settings())
    live.run_pass(workspace_id)  # immediate: the pass, then the readings task it enqueues
    with db.session() as session:
        kinds = sorted(r.kind for r in session.query(OverviewReading))
    reports = [f"report:{name}" for name in REPORTS]  # the funnel's too: the overview's funnel
    assert kinds == sorted(["movers", "retention", "trends", *reports])
    restarted = Database.open(url, run_migrations=False)
    try:
        found = funnel_summary(restarted, workspace_id)
    finally:
        restarted.dispose()
    assert found.ready and found.current and found.steps
    live.queue.database().dispose()


def test_a_customers_event_committed_after_a_larger_id_is_still_rescored(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: ada's writer draws an id, bob's event commits under a larger one and a pass
    runs, then ada's commits; her new event must still change health's inputs."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    settle_quickly(monkeypatch)
    workspace_id = new_workspace(db)
    shop = [message(u, 0, f"{u}0", "Order Completed", revenue=9) for u in ("ada", "bob")]
    ingest(db, workspace_id, shop)
    now = at(3 * DAY)
    assert live_pass(db, workspace_id, now=now, settings=SETTINGS).health_rescored == 2
    page = {"type": "page", "name": None, "ts": int(at(2 * DAY).timestamp())}
    with late_event(db, workspace_id, "ada0", message_id="ada-late", **page) as commit_late:
        ingest(db, workspace_id, [message("bob", 2 * DAY, "bob-page", kind="page")])
        first = live_pass(db, workspace_id, now=now, settings=SETTINGS)
        commit_late()
    second = live_pass(db, workspace_id, now=now, settings=SETTINGS)
    assert first.health_rescored + second.health_rescored == 2  # bob and ada, once each
