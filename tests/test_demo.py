"""The demo builds a faithful CDNOW workspace: real purchases, synthetic journeys, idempotent."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from clm.analytics import run_report
from clm.cli import app
from clm.demo import WORKSPACE, build_demo, cdnow_transactions
from clm.store import customers as repo
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    EngageJourney,
    EngageMessage,
    Event,
    Identity,
    PredictionFit,
    Workspace,
)
from tests.conftest import shared_data_file


def test_demo_purchases_are_the_cdnow_log(sqlite_db: Database) -> None:
    summary = build_demo(sqlite_db, customers=40)
    # Independently from the shared copy of the data set: the first 40 customers' lines.
    lines = [
        line.split() for line in shared_data_file("CDNOW_master.txt").read_text().splitlines()[1:]
    ]
    first_40 = sorted({line[0] for line in lines})[:40]
    expected = [line for line in lines if line[0] in first_40]
    assert len(lines) == 69_659
    assert summary.customers == 40
    assert summary.purchases == len(expected)
    with sqlite_db.session() as session:
        revenue = session.scalar(
            select(func.sum(Event.revenue)).where(Event.name == "Order Completed")
        )
        live = session.scalar(select(func.count()).where(Customer.merged_into_id.is_(None)))
        one = repo.find_customer(session, summary.workspace_id, "user_id", first_40[0])
    assert revenue == sum(float(line[3]) for line in expected)
    # Every synthetic visitor was identified and merged into its CDNOW customer.
    assert live == 40
    assert {i.kind for i in one.identities} == {"user_id", "anonymous_id", "email"}
    with sqlite_db.session() as session:
        timeline = repo.timeline(session, summary.workspace_id, one.id, limit=1000)
    events = {e.name or e.type for e in timeline}
    assert {"Landing", "identify", "Signed Up", "Order Completed"} <= events
    assert summary.touchpoints > 3 * 40

    def counts() -> tuple[int, int, int]:
        with sqlite_db.session() as session:
            total = session.scalar(select(func.count()).select_from(Event)) or 0
            own = session.scalar(
                select(func.count()).where(Event.message_id.like("clm-%"))
            ) or 0  # fmt: skip
            scored = session.scalar(
                select(func.count()).where(Event.name == "Prediction Scored")
            ) or 0  # fmt: skip
        return total, own, scored

    total, own, scored = counts()
    # Data = purchases + touchpoints; CLM's own events (scores, stage changes) come on top.
    assert total - own == summary.purchases + summary.touchpoints
    # Five fits (four weekly ones before the last day, then the last day), 40 customers each
    assert summary.predictions == 40 and scored == 5 * 40
    again = build_demo(sqlite_db, customers=40)
    assert counts() == (total, own, scored)  # nothing doubled
    assert again.secret_key is None  # keys are issued once


def test_demo_dates_end_yesterday_and_stay_put_on_a_later_run(sqlite_db: Database) -> None:
    built_on = date(2026, 12, 6)
    summary = build_demo(sqlite_db, customers=30, today=built_on)
    # By hand: 1998-06-30 + shift = 2026-12-05, the day before the build.
    shift = (date(2026, 12, 5) - date(1998, 6, 30)).days
    assert (summary.shift_days, summary.last_day) == (shift, date(2026, 12, 5))
    lines = [
        line.split() for line in shared_data_file("CDNOW_master.txt").read_text().splitlines()[1:]
    ]
    first_30 = sorted({line[0] for line in lines})[:30]
    days = sorted(
        datetime.strptime(line[1], "%Y%m%d").date() + timedelta(days=shift)
        for line in lines
        if line[0] in first_30
    )

    def purchase_days() -> tuple[date, date, int]:
        with sqlite_db.session() as session:
            low, high, n = session.execute(
                select(func.min(Event.timestamp), func.max(Event.timestamp), func.count()).where(
                    Event.name == "Order Completed"
                )
            ).one()
        return low.date(), high.date(), n

    assert purchase_days() == (days[0], days[-1], len(days))
    later = build_demo(sqlite_db, customers=30, today=built_on + timedelta(days=3))
    assert later.shift_days == shift  # kept with the workspace: nothing moved, nothing doubled
    assert purchase_days() == (days[0], days[-1], len(days))


def test_cdnow_loader_matches_the_shared_file() -> None:
    frame = cdnow_transactions()
    assert frame.height == 69_659
    assert frame.select("customer_id").n_unique() == 23_570


def test_demo_command_builds_without_serving(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--no-serve", "--customers", "25"], env={"CLM_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    assert "25 customers" in result.output
    assert (tmp_path / "demo" / "keys.json").exists()
    # The engagement part: delivered to the demo's own SMTP sink, one .eml per message.
    mailbox = tmp_path / "demo" / "mailbox"
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(mailbox.glob("*.eml"))
    ]
    assert f"Mailbox: {len(mails)} messages in {mailbox}" in " ".join(result.output.split())
    subjects = Counter(str(m["Subject"]).split(",")[0] for m in mails)
    db = Database.open(f"sqlite:///{tmp_path / 'demo' / 'clm.sqlite'}")
    try:
        with db.session() as session:
            welcomed = session.scalar(
                select(func.count()).where(
                    EngageJourney.playbook_name == "welcome", EngageJourney.arm == "treatment"
                )
            )
            sent = session.scalar(select(func.count()).where(EngageMessage.status == "sent"))
            workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == WORKSPACE))
        assert workspace_id is not None
        # The log is shifted to end yesterday: the reports' default period ends there too.
        funnel = run_report(db, workspace_id, "funnel")
    finally:
        db.dispose()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    shift = (yesterday - date(1998, 6, 30)).days
    lines = [
        line.split() for line in shared_data_file("CDNOW_master.txt").read_text().splitlines()[1:]
    ]
    first_25 = sorted({line[0] for line in lines})[:25]
    last_purchase = max(
        datetime.strptime(line[1], "%Y%m%d").date() for line in lines if line[0] in first_25
    ) + timedelta(days=shift)
    # Nothing after yesterday; at least the last purchase of these 25 customers, shifted.
    assert last_purchase <= funnel.until.date() <= yesterday
    # Every one of the 25 customers bought: each was asked the NPS question.
    assert subjects == {"A quick question from us": 25, "Welcome aboard": welcomed}
    assert welcomed and sent == len(mails)
    again = CliRunner().invoke(
        app, ["demo", "--no-serve", "--customers", "25"], env={"CLM_DATA_DIR": str(tmp_path)}
    )
    assert again.exit_code == 0, again.output
    assert len(list(mailbox.glob("*.eml"))) == len(mails)  # nothing sent twice


def test_demo_predictions_precede_the_overview_week(sqlite_db: Database) -> None:
    """The live loop refits daily, so a running CLM knows every customer's P(alive) long before
    this week; a demo with one fit at its end gave everyone their first P(alive) inside the
    overview's 7-day window, and the movers read that as health falling for most customers."""
    built_on = date(2026, 12, 6)
    summary = build_demo(sqlite_db, customers=40, today=built_on)
    # By hand: the last day is 2026-12-05; fits as of it and of the 4 weeks before, each
    # stamped at the end of its day (midnight)
    ends = [datetime(2026, 12, 6, tzinfo=UTC) - timedelta(weeks=w) for w in (4, 3, 2, 1, 0)]
    with sqlite_db.session() as session:
        fits = session.scalars(select(PredictionFit.as_of).order_by(PredictionFit.as_of)).all()
        first = session.execute(
            select(Identity.customer_id, func.min(Event.ts))
            .join(Identity, Identity.id == Event.identity_id)
            .where(Event.name == "Prediction Scored")
            .group_by(Identity.customer_id)
        ).all()
    assert [f.replace(tzinfo=UTC) for f in fits] == ends
    # The 40 first customers all bought in CDNOW's first quarter: each is scored from the first
    # fit on, 4 weeks before the end, so none gets a first P(alive) in the last 7 days
    assert len(first) == summary.customers == 40
    assert {ts for _, ts in first} == {int(ends[0].timestamp())}
