"""Playbooks: triggers on stage changes, steps, waits, A/B, holdout uplift, versions, pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.journey_steps import tick
from clm.engage.schemas import Policy
from clm.errors import ValidationError
from clm.ingest import ingest
from clm.lifecycle.current_state import refresh_state
from clm.store.engine import Database
from clm.store.models import Customer, EngageMessage, EngageTask, Event
from tests.conftest import make_tenant

NOW = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)


def population(db: Database, n: int) -> tuple[int, dict[str, int]]:
    ws = make_tenant(db).id
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
    ingest(db, ws, [
        {"type": "identify", "userId": f"u{i}", "messageId": f"id-{i}",
         "traits": {"email": f"u{i}@example.com", "first_name": f"U{i}",
                    "nps_promoter": i % 2 == 0},
         "timestamp": "2024-06-01T00:00:00Z"}
        for i in range(n)
    ])  # fmt: skip
    with db.session() as session:
        ids = {u: c for u, c in session.execute(select(Customer.user_id, Customer.id))}
    with db.transaction() as session:
        for cid in ids.values():
            repo.set_consent(session, ws, cid, "email", "marketing", True)
    return ws, ids  # type: ignore[return-value]


def stage_changes(db: Database, ws: int, users: list[str], to: str, at: datetime) -> None:
    ingest(db, ws, [
        {"type": "track", "event": "lifecycle_stage_changed", "userId": u,
         "messageId": f"lc-{u}-{to}", "timestamp": at.isoformat(),
         "properties": {"from_stage": "acquisition", "to_stage": to}}
        for u in users
    ])  # fmt: skip


def orders(db: Database, ws: int, users: list[str], at: datetime) -> None:
    ingest(db, ws, [
        {"type": "track", "event": "Order Completed", "userId": u, "messageId": f"o-{u}-{at}",
         "timestamp": at.isoformat(), "properties": {"revenue": 20}}
        for u in users
    ])  # fmt: skip


def test_welcome_series_waits_for_an_order_or_nudges(sqlite_db: Database) -> None:
    db = sqlite_db
    ws, ids = population(db, 6)
    book = pb.shipped_playbook("welcome").model_copy(update={"holdout": 0.0})
    pb.apply_playbook(db, ws, book)
    stage_changes(db, ws, ["u0", "u1", "u2"], "conversion", NOW)
    stage_changes(db, ws, ["u3"], "retention", NOW)  # another stage: no trigger
    report = tick(db, ws, NOW)
    assert (report.enrolled, report.sends, report.blocked) == (3, 3, 0)
    assert tick(db, ws, NOW).enrolled == 0  # the cursor moved on; no double enrolment
    orders(db, ws, ["u0"], NOW + timedelta(days=1))
    tick(db, ws, NOW + timedelta(days=1))
    later = tick(db, ws, NOW + timedelta(days=4))  # u1, u2 time out and get the nudge
    assert later.sends == 2
    history = pb.journey_history(db, ws, ids["u0"])
    assert [h.action for h in history[0].history] == ["enrolled", "send", "wait", "event", "exit"]
    assert history[0].state == "exited"
    assert history[0].history[0].detail.startswith("stage acquisition → conversion")
    nudged = pb.journey_history(db, ws, ids["u1"])[0]
    assert [h.action for h in nudged.history][-3:] == ["timeout", "send", "completed"]
    with db.session() as session:
        keys = sorted(session.scalars(select(EngageMessage.source)))
    assert keys.count("playbook:welcome:v1:hello") == 3
    assert keys.count("playbook:welcome:v1:nudge") == 2


def test_branch_split_and_tasks(sqlite_db: Database) -> None:
    db = sqlite_db
    ws, ids = population(db, 40)
    pb.apply_playbook(db, ws, pb.shipped_playbook("advocacy_ask"))
    stage_changes(db, ws, [f"u{i}" for i in range(40)], "loyalty", NOW)
    tick(db, ws, NOW)
    variants: dict[str | None, int] = {}
    for uid, cid in ids.items():
        [journey] = pb.journey_history(db, ws, cid)
        promoter = int(uid[1:]) % 2 == 0
        assert (journey.variant is not None) == promoter
        variants[journey.variant] = variants.get(journey.variant, 0) + 1
    assert variants[None] == 20
    assert variants["testimonial"] > 3 and variants["referral"] > 3
    report = pb.playbook_report(db, ws, "advocacy_ask")
    assert set(report.variants) == {"testimonial", "referral"}


def test_holdout_and_uplift_with_confidence_interval(sqlite_db: Database) -> None:
    db = sqlite_db
    ws, ids = population(db, 200)
    book = pb.parse_playbook({
        "name": "convert", "trigger": {"type": "stage_changed", "to": "conversion"},
        "goal": {"event": "Order Completed", "within_days": 30}, "holdout": 0.3,
        "steps": [{"id": "hi", "type": "send", "category": "welcome",
                   "content": {"subject": "Hi", "text": "Hello"}}],
    })  # fmt: skip
    pb.apply_playbook(db, ws, book)
    users = [f"u{i}" for i in range(200)]
    stage_changes(db, ws, users, "conversion", NOW)
    tick(db, ws, NOW)
    journeys = {u: pb.journey_history(db, ws, ids[u])[0] for u in users}
    control = [u for u, j in journeys.items() if j.arm == "control"]
    assert 35 <= len(control) <= 85  # 30% of 200, give or take
    assert all(journeys[u].state == "control" for u in control)
    # Treated customers all buy again, the control half of the time.
    treated = [u for u in users if u not in control]
    orders(db, ws, treated + control[::2], NOW + timedelta(days=3))
    report = pb.playbook_report(db, ws, "convert")
    assert report.treatment.rate == 1.0
    assert report.control.rate == pytest.approx(len(control[::2]) / len(control), abs=1e-3)
    assert report.uplift is not None and report.ci_low is not None and report.ci_high is not None
    assert report.ci_low < report.uplift < report.ci_high
    assert report.ci_low > 0.3  # clearly positive
    with db.session() as session:
        sent_to = set(session.scalars(select(EngageMessage.customer_id)))
    assert not sent_to & {ids[u] for u in control}  # the control group got nothing


def test_versions_keep_journeys_unless_migrated_and_pause(sqlite_db: Database) -> None:
    db = sqlite_db
    ws, ids = population(db, 4)
    v1 = pb.parse_playbook({
        "name": "drip", "trigger": {"type": "stage_changed", "to": "conversion"},
        "steps": [{"id": "a", "type": "send", "content": {"text": "A"}},
                  {"id": "w", "type": "wait", "days": 1},
                  {"id": "b", "type": "send", "content": {"text": "B"}}],
    })  # fmt: skip
    assert pb.apply_playbook(db, ws, v1).version == 1
    assert pb.apply_playbook(db, ws, v1).version == 1  # unchanged: not a new version
    stage_changes(db, ws, ["u0", "u1"], "conversion", NOW)
    tick(db, ws, NOW)
    assert v1.steps[2].content is not None
    v2 = v1.model_copy(
        update={
            "steps": [
                *v1.steps[:2],
                v1.steps[2].model_copy(
                    update={"content": v1.steps[2].content.model_copy(update={"text": "B2"})}
                ),
            ]
        }
    )
    assert pb.apply_playbook(db, ws, v2).version == 2
    tick(db, ws, NOW + timedelta(days=2))
    with db.session() as session:
        texts = sorted(
            m.payload["text"].split("\n")[0] for m in session.scalars(select(EngageMessage))
        )
    assert texts == ["A", "A", "B", "B"]  # mid-journey customers stayed on version 1

    stage_changes(db, ws, ["u2"], "conversion", NOW + timedelta(days=2))
    pb.set_paused(db, ws, "drip", True)
    assert tick(db, ws, NOW + timedelta(days=2)).sends == 0  # paused: no one enrols
    pb.set_paused(db, ws, "drip", False)
    assert v2.steps[2].content is not None
    v3 = v2.model_copy(
        update={
            "steps": [
                *v2.steps[:2],
                v2.steps[2].model_copy(
                    update={"content": v2.steps[2].content.model_copy(update={"text": "B3"})}
                ),
            ]
        }
    )
    stage_changes(db, ws, ["u3"], "conversion", NOW + timedelta(days=3))
    tick(db, ws, NOW + timedelta(days=3))  # u3 starts on v2, waits a day
    pb.apply_playbook(db, ws, v3, migrate=True)
    tick(db, ws, NOW + timedelta(days=5))
    [journey] = pb.journey_history(db, ws, ids["u3"])
    assert journey.version == 3
    assert "migrated" in [h.action for h in journey.history]
    with db.session() as session:
        last = session.scalars(
            select(EngageMessage)
            .where(EngageMessage.customer_id == ids["u3"])
            .order_by(EngageMessage.id)
        ).all()
    assert [m.payload["text"].split("\n")[0] for m in last] == ["A", "B3"]


def test_invalid_playbooks_are_explained() -> None:
    with pytest.raises(ValidationError) as err:
        pb.parse_playbook(
            "name: x\ntrigger: {type: event}\nsteps:\n  - {id: a, type: branch, then: nowhere}\n"
        )
    text = str(err.value)
    assert "event trigger needs 'event'" in text
    with pytest.raises(ValidationError, match="template error"):
        pb.parse_playbook({"name": "x", "trigger": {"type": "stage_changed"},
                           "steps": [{"id": "a", "type": "send",
                                      "content": {"text": "{{ oops"}}]})  # fmt: skip
    for name in pb.SHIPPED:
        assert pb.shipped_playbook(name).name == name


def test_tasks_and_trait_updates_are_written(sqlite_db: Database) -> None:
    db = sqlite_db
    ws, ids = population(db, 1)
    pb.apply_playbook(db, ws, pb.parse_playbook({
        "name": "care", "trigger": {"type": "event", "event": "Ticket Closed",
                                    "where": {"outcome": "unresolved"}},
        "steps": [{"id": "call", "type": "task", "title": "Call back"},
                  {"id": "tag", "type": "update", "traits": {"needs_care": True}}],
    }))  # fmt: skip
    ingest(
        db,
        ws,
        [
            {
                "type": "track",
                "event": "Ticket Closed",
                "userId": "u0",
                "messageId": "t1",
                "properties": {"outcome": "unresolved"},
            }
        ],
    )
    tick(db, ws, NOW)
    with db.session() as session:
        task = session.scalars(select(EngageTask)).one()
        customer = session.get(Customer, ids["u0"])
        identify = session.scalars(
            select(Event).where(Event.type == "identify", Event.message_id.like("clm-engage-%"))
        ).one()
    assert task.title == "Call back"
    assert customer is not None and customer.traits["needs_care"] is True
    assert identify.traits == {"needs_care": True}


def test_segment_entry_enrols_only_who_enters_after_the_start(sqlite_db: Database) -> None:
    db = sqlite_db
    ws, ids = population(db, 5)
    # u<i> buys i+1 times on days 1..i+1: u4 scores R5 F5 M5 ("Champions"), the others less.
    for i in range(5):
        for day in range(1, i + 2):
            orders(db, ws, [f"u{i}"], datetime(2024, 5, day, tzinfo=UTC))
    pb.apply_playbook(db, ws, pb.parse_playbook({
        "name": "champions", "holdout": 0,
        "trigger": {"type": "segment_entered",
                    "conditions": [{"attr": "rfm", "value": "Champions"}]},
        "steps": [{"id": "thanks", "type": "send", "category": "loyalty",
                   "content": {"subject": "Thank you", "text": "You are a champion"}}],
    }))  # fmt: skip
    # The live loop refreshes the stored current state (RFM segments too) every pass.
    refresh_state(db, ws, now=NOW)
    first = tick(db, ws, NOW)
    assert first.enrolled == 0  # u4 was a champion already: that is not entering
    # u2 now buys more, more recently: u2 becomes the champion, u4 drops to Loyal.
    for day in range(10, 20):
        orders(db, ws, ["u2"], datetime(2024, 5, day, tzinfo=UTC))
    refresh_state(db, ws, now=NOW + timedelta(hours=1))
    second = tick(db, ws, NOW + timedelta(hours=1))
    assert (second.enrolled, second.sends) == (1, 1)
    [journey] = pb.journey_history(db, ws, ids["u2"])
    assert journey.history[0].detail == "entered segment (rfm eq Champions); treatment"
    assert tick(db, ws, NOW + timedelta(hours=2)).enrolled == 0  # still in: not entering again
    with pytest.raises(ValidationError):
        pb.parse_playbook({"name": "x", "trigger": {"type": "segment_entered"},
                           "steps": [{"id": "a", "type": "exit"}]})  # fmt: skip


def test_a_saved_segment_is_a_trigger_by_name(sqlite_db: Database) -> None:
    from clm.errors import Conflict
    from clm.lifecycle.conditions import Condition
    from clm.lifecycle.saved_segments import SegmentCreate, create_segment, delete_segment

    db = sqlite_db
    ws, ids = population(db, 4)  # u0 and u2 are promoters (nps_promoter true)
    book = {
        "name": "gold-thanks", "holdout": 0,
        "trigger": {"type": "segment_entered", "segment": "gold"},
        "steps": [{"id": "thanks", "type": "send", "category": "loyalty",
                   "content": {"subject": "Thank you", "text": "Gold!"}}],
    }  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        pb.apply_playbook(db, ws, pb.parse_playbook(book))
    [error] = caught.value.errors
    assert error.loc == ("trigger", "segment") and "no saved segment named 'gold'" in error.message
    conditions = [Condition(attr="traits.plan", value="gold"),
                  Condition(attr="traits.nps_promoter", value=True)]  # fmt: skip
    gold = create_segment(db, ws, SegmentCreate(name="gold", conditions=conditions), "test")
    pb.apply_playbook(db, ws, pb.parse_playbook(book))
    ingest(db, ws, [{"type": "identify", "userId": "u0", "messageId": "plan-u0",
                     "traits": {"plan": "gold"}, "timestamp": "2024-06-02T00:00:00Z"}])  # fmt: skip
    assert tick(db, ws, NOW).enrolled == 0  # u0 was in already: that is not entering
    # u2 (a promoter) and u3 (not one) move to gold: only u2 enters the segment.
    ingest(db, ws, [{"type": "identify", "userId": u, "messageId": f"plan2-{u}",
                     "traits": {"plan": "gold"}, "timestamp": "2024-06-03T00:00:00Z"}
                    for u in ("u2", "u3")])  # fmt: skip
    second = tick(db, ws, NOW + timedelta(hours=1))
    assert (second.enrolled, second.sends) == (1, 1)
    [journey] = pb.journey_history(db, ws, ids["u2"])
    assert journey.history[0].detail == "entered segment (gold); treatment"
    with pytest.raises(Conflict):  # a live playbook triggers on it
        delete_segment(db, ws, gold.id)
    # Inline conditions are checked by the same rules as a saved segment's.
    with pytest.raises(ValidationError, match="unknown attribute 'colour'"):
        colour = [{"attr": "colour", "value": 1}]
        pb.parse_playbook({**book, "trigger": {"type": "segment_entered", "conditions": colour}})
