"""Each response's stored latest answer (``clm.engage.surveys.stored_answers``): a log worked
by hand with revisions arriving out of order, the incremental catch-up against a refold and
against the old pass over every answer event (kept here as the independent implementation),
and the paths that delete events or move identities: erasure, retention, merges, the tick,
a workspace upgraded with answers already in its log. SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import literal, select

from clm.accounts import Actor
from clm.engage.playbooks.schedule import run_due
from clm.engage.surveys import service as surveys
from clm.engage.surveys.results import survey_comments, survey_results
from clm.engage.surveys.schemas import SurveyDefinition
from clm.engage.surveys.stored_answers import CURSOR, catch_up, invalidate_answers
from clm.ingest import ingest
from clm.privacy import erase_customer
from clm.privacy.retention import apply_retention
from clm.privacy.settings import PrivacySettings, set_privacy_settings
from clm.store.engine import Database
from clm.store.models import Customer, EngageCursor, Event, Identity, SurveyAnswer
from tests.conftest import make_tenant

MARCH = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
TEST = Actor("test:survey-answers")
HOUR = timedelta(hours=1)


def answered(user: str, mid: str, at: datetime, **props: Any) -> dict[str, Any]:
    """A ``survey_answered`` track message, as the answer link or an import writes it."""
    return {"type": "track", "event": "survey_answered", "userId": user, "messageId": mid,
            "timestamp": at.isoformat(), "properties": props}  # fmt: skip


def workspace(db: Database) -> int:
    ws = make_tenant(db).id
    surveys.save_survey(db, ws, SurveyDefinition(key="nps", type="nps"))
    surveys.save_survey(db, ws, SurveyDefinition(key="csat", type="csat"))
    return ws


def log(db: Database, ws: int, messages: list[dict[str, Any]]) -> None:
    result = ingest(db, ws, messages)
    assert result.stored == len(messages), result


def stored(db: Database, ws: int) -> list[tuple[Any, ...]]:
    with db.session() as session:
        rows = session.execute(
            select(SurveyAnswer.survey_key, SurveyAnswer.response_key, SurveyAnswer.identity_id,
                   SurveyAnswer.score, SurveyAnswer.score_ts, SurveyAnswer.score_revision,
                   SurveyAnswer.score_message_id, SurveyAnswer.comment, SurveyAnswer.sentiment,
                   SurveyAnswer.comment_ts, SurveyAnswer.comment_revision,
                   SurveyAnswer.comment_message_id)
            .where(SurveyAnswer.workspace_id == ws)
            .order_by(SurveyAnswer.survey_key, SurveyAnswer.response_key)
        ).all()  # fmt: skip
    return [tuple(r) for r in rows]


def refolded(db: Database, ws: int) -> list[tuple[Any, ...]]:
    """The rows rebuilt from the whole log (the batch path)."""
    with db.transaction() as session:
        invalidate_answers(session, ws)
    catch_up(db, ws)
    return stored(db, ws)


# --- the old pass over every answer event, kept as the independent implementation ----------


def old_latest_answers(db: Database, ws: int, key: str) -> list[tuple[int, int]]:
    """(score, ts) of each response: its latest revision that has a score (the code the
    stored rows replaced, as it was)."""
    props = Event.properties
    with db.session() as session:
        rows = session.execute(
            select(Event.message_id, Event.ts, props["score"].as_float(),
                   props["response_id"].as_string(), props["revision"].as_float())
            .where(Event.workspace_id == ws,
                   Event.name == literal("survey_answered", literal_execute=True),
                   props["survey_id"].as_string() == key,
                   props["score"].as_float().is_not(None))
        ).all()  # fmt: skip
    best: dict[str, tuple[int, int, str, int]] = {}
    for message_id, ts, score, response_id, revision in rows:
        response = f"r:{response_id}" if response_id else f"m:{message_id}"
        rank = (int(revision or 1), int(ts), str(message_id), int(score))
        if response not in best or rank > best[response]:
            best[response] = rank
    return [(score, ts) for _, ts, _, score in best.values()]


def old_results(db: Database, ws: int, key: str, kind: str, month: bool) -> dict[str, Any]:
    """The results' numbers from ``old_latest_answers`` over plain lists of scores."""
    answers = old_latest_answers(db, ws, key)
    scores = [s for s, _ in answers]

    def metric(part: list[int]) -> float:
        high = sum(s >= (9 if kind == "nps" else 4) for s in part)
        low = sum(s <= (6 if kind == "nps" else 2) for s in part)
        if kind == "nps":
            return round(100 * (high - low) / len(part), 2)
        return round(100 * high / len(part), 2)

    periods: dict[str, list[int]] = {}
    for score, ts in answers:
        day = datetime.fromtimestamp(ts, UTC)
        year, week, _ = day.isocalendar()
        label = f"{day.year}-{day.month:02d}" if month else f"{year}-W{week:02d}"
        periods.setdefault(label, []).append(score)
    return {
        "responses": len(scores),
        "value": metric(scores) if scores else None,
        "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
        "distribution": sorted((s, scores.count(s)) for s in set(scores)),
        "trend": [(p, len(periods[p]), metric(periods[p])) for p in sorted(periods)],
    }


def results_of(db: Database, ws: int, key: str, month: bool) -> dict[str, Any]:
    found = survey_results(db, ws, key, "month" if month else "week")
    return {
        "responses": found.responses,
        "value": found.value,
        "mean_score": found.mean_score,
        "distribution": sorted((int(s), n) for s, n in found.distribution.items() if n),
        "trend": [(p.period, p.responses, p.value) for p in found.trend],
    }


def comments_from_log(db: Database, ws: int, key: str) -> list[tuple[str, int]]:
    """(comment, ts) of each response's latest revision that has a comment, newest first,
    worked out from the events' documents in Python."""
    with db.session() as session:
        events = session.execute(
            select(Event.message_id, Event.ts, Event.properties).where(
                Event.workspace_id == ws, Event.name == "survey_answered"
            )
        ).all()
    best: dict[str, tuple[int, int, str, str]] = {}
    for mid, ts, props in events:
        if props.get("survey_id") != key or props.get("comment") is None:
            continue
        response = f"r:{props['response_id']}" if props.get("response_id") else f"m:{mid}"
        rank = (int(props.get("revision") or 1), int(ts), mid, props["comment"])
        if response not in best or rank > best[response]:
            best[response] = rank
    ordered = sorted(best.items(), key=lambda kv: (kv[1][1], kv[0]), reverse=True)
    return [(rank[3], rank[1]) for _, rank in ordered]


def comments_of(db: Database, ws: int, key: str) -> list[tuple[str, int]]:
    page = survey_comments(db, ws, key, per_page=1_000)
    assert page.total == len(page.items)
    return [(c.comment, int(c.at.timestamp())) for c in page.items]


# --- a log worked by hand ---------------------------------------------------------------------


def test_a_hand_worked_log_arriving_out_of_order(db: Database) -> None:
    ws = workspace(db)
    apr = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
    # First batch: Ann answers 9; Bob's comment (revision 2, score 3) arrives before his
    # one-click 5 (revision 1); Dan answers 6 without a response id; an answer of no survey.
    log(db, ws, [
        answered("ann", "a1", MARCH, survey_id="nps", response_id="r1", revision=1, score=9),
        answered("bob", "b2", apr + 24 * HOUR, survey_id="nps", response_id="r2", revision=2,
                 score=3, comment="Slow.", sentiment=-0.4),
        answered("dan", "d1", apr + 19 * 24 * HOUR, survey_id="nps", score=6),
        answered("dan", "x1", apr, score=1),
    ])  # fmt: skip
    first = survey_results(db, ws, "nps")
    # By hand: 9, 3, 6 -> 1 promoter, 2 detractors of 3: NPS -33.33.
    assert (first.responses, first.promoters, first.detractors) == (3, 1, 2)
    assert first.value == -33.33 and first.comments == 1
    # Second batch: Ann's comment; Bob's revision 1 (ranks lower: his 3 stays); Cat's comment
    # without a score (revision 2) before her scored revision 1; Dan's empty answer; Ann's
    # CSAT answer under the same response id as her NPS one (another survey, another row).
    log(db, ws, [
        answered("ann", "a2", MARCH + HOUR, survey_id="nps", response_id="r1", revision=2,
                 score=9, comment="Great, thanks!", sentiment=0.8),
        answered("bob", "b1", apr, survey_id="nps", response_id="r2", revision=1, score=5),
        answered("cat", "c2", datetime(2024, 5, 5, tzinfo=UTC), survey_id="nps",
                 response_id="r3", revision=2, comment="Actually, meh", sentiment=0.0),
        answered("dan", "d4", apr, survey_id="nps", response_id="r4", revision=1),
        answered("ann", "a3", apr + 2 * 24 * HOUR, survey_id="csat", response_id="r1",
                 revision=1, score=4),
    ])  # fmt: skip
    catch_up(db, ws)
    # Third batch: Cat's scored revision 1 (with its own comment, outranked by revision 2's);
    # Dan's second answer without a response id counts on its own.
    log(db, ws, [
        answered("cat", "c1", MARCH + 9 * 24 * HOUR, survey_id="nps", response_id="r3",
                 revision=1, score=10, comment="Love it", sentiment=0.7),
        answered("dan", "d2", apr + 20 * 24 * HOUR, survey_id="nps", score=8),
    ])  # fmt: skip
    nps = survey_results(db, ws, "nps")
    # By hand: Ann 9 (Mar), Bob 3 (Apr), Cat 10 (Mar), Dan 6 and 8 (Apr): promoters 9, 10;
    # passive 8; detractors 3, 6. NPS = 100 * (2 - 2) / 5 = 0; mean 36 / 5 = 7.2.
    assert (nps.responses, nps.promoters, nps.passives, nps.detractors) == (5, 2, 1, 2)
    assert (nps.value, nps.mean_score) == (0.0, 7.2)
    assert nps.distribution == {str(s): {9: 1, 3: 1, 10: 1, 6: 1, 8: 1}.get(s, 0)
                                for s in range(11)}  # fmt: skip
    # March: 9 and 10 -> 100; April: 3, 6, 8 -> 100 * (0 - 2) / 3 = -66.67.
    assert [(p.period, p.responses, p.value) for p in nps.trend] == [
        ("2024-03", 2, 100.0), ("2024-04", 3, -66.67)]  # fmt: skip
    # One comment per response, its latest: Cat's revision 2 (with her revision-1 score).
    assert nps.comments == 3
    page = survey_comments(db, ws, "nps")
    assert [(c.comment, c.score, c.tone) for c in page.items] == [
        ("Actually, meh", 10, "neutral"), ("Slow.", 3, "negative"),
        ("Great, thanks!", 9, "positive")]  # fmt: skip
    assert [c.customer for c in page.items] == ["cat", "bob", "ann"]
    negative = survey_comments(db, ws, "nps", tone_filter="negative")
    assert (negative.total, [c.comment for c in negative.items]) == (1, ["Slow."])
    second = survey_comments(db, ws, "nps", per_page=1, page=2)
    assert (second.total, [c.comment for c in second.items]) == (3, ["Slow."])
    csat = survey_results(db, ws, "csat")
    assert (csat.responses, csat.value, csat.comments) == (1, 100.0, 0)
    # The rows themselves: Bob's score is revision 2's, Cat's score revision 1's with its
    # time, her comment revision 2's.
    rows = {(r[0], r[1]): r[3:] for r in stored(db, ws)}
    apr2 = int((apr + 24 * HOUR).timestamp())
    assert rows[("nps", "r:r2")][:4] == (3, apr2, 2, "b2")
    cat = rows[("nps", "r:r3")]
    assert cat[:4] == (10, int((MARCH + 9 * 24 * HOUR).timestamp()), 1, "c1")
    assert cat[4:] == ("Actually, meh", 0.0, int(datetime(2024, 5, 5, tzinfo=UTC).timestamp()),
                       2, "c2")  # fmt: skip
    assert ("nps", "r:r4") not in rows and len(rows) == 6  # 5 NPS responses, 1 CSAT
    # Incremental equals the rebuild from the whole log.
    before = stored(db, ws)
    assert refolded(db, ws) == before


# --- incremental against the old pass, on random logs ------------------------------------------


def random_log(seed: int, users: int = 9, responses: int = 60) -> list[dict[str, Any]]:
    """Answers to two surveys over a year: one to three revisions each (a score, a comment, or
    both; revisions' times in any order), some without a response id."""
    rng = random.Random(seed)
    texts = ["Great!", "Awful support.", "Fine.", "Could be better", ""]
    messages = []
    for n in range(responses):
        user = f"u{rng.randrange(users)}"
        key, top = rng.choice([("nps", 10), ("csat", 5)])
        response = f"resp{n}" if rng.random() > 0.15 else None
        for revision in range(1, rng.randint(1, 3) + 1):
            at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(365 * 86_400))
            props: dict[str, Any] = {"survey_id": key, "revision": revision}
            if response:
                props["response_id"] = response
            if rng.random() < 0.8:
                props["score"] = rng.randint(0 if key == "nps" else 1, top)
            if rng.random() < 0.5:
                props["comment"] = rng.choice(texts)
                props["sentiment"] = rng.choice([-0.6, 0.0, 0.03, 0.7])
            messages.append(answered(user, f"m{n}-{revision}", at, **props))
    rng.shuffle(messages)
    return messages


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_equals_the_old_pass_and_a_refold(db: Database, seed: int) -> None:
    ws = workspace(db)
    messages = random_log(seed)
    for start in range(0, len(messages), 25):  # four batches, a catch-up (a read) after each
        log(db, ws, messages[start : start + 25])
        survey_results(db, ws, "nps")
    incremental = stored(db, ws)
    for key, kind in (("nps", "nps"), ("csat", "csat")):
        for month in (True, False):
            assert results_of(db, ws, key, month) == old_results(db, ws, key, kind, month)
        assert comments_of(db, ws, key) == comments_from_log(db, ws, key)
    assert refolded(db, ws) == incremental


# --- the paths that move or delete what the rows were made of ----------------------------------


def test_a_workspace_upgraded_with_answers_reads_them_at_once(db: Database) -> None:
    """Answers logged before the table existed (no cursor): the first read folds them."""
    ws = workspace(db)
    log(
        db,
        ws,
        [
            answered("ann", "a1", MARCH, survey_id="nps", response_id="r", score=10),
            answered("bob", "b1", MARCH, survey_id="nps", response_id="s", score=2),
        ],
    )
    with db.session() as session:
        cursor = session.scalar(select(EngageCursor.id).where(EngageCursor.consumer == CURSOR))
        assert cursor is None
        assert session.scalar(select(SurveyAnswer.score)) is None
    found = survey_results(db, ws, "nps")
    assert (found.responses, found.value) == (2, 0.0)  # 1 promoter, 1 detractor of 2


def test_the_engagement_tick_folds_new_answers(db: Database) -> None:
    ws = workspace(db)
    log(db, ws, [answered("ann", "a1", MARCH, survey_id="nps", response_id="r", score=10)])
    report = run_due(db, ws, MARCH + HOUR)
    assert report.errors == []
    assert [(r[0], r[1], r[3]) for r in stored(db, ws)] == [("nps", "r:r", 10)]


def test_erasure_removes_the_persons_answers_and_the_rest_stay_exact(db: Database) -> None:
    ws = workspace(db)
    log(db, ws, [
        answered("ann", "a1", MARCH, survey_id="nps", response_id="r1", score=10,
                 comment="Ann Example loves it", sentiment=0.6),
        answered("bob", "b1", MARCH, survey_id="nps", response_id="r2", score=3,
                 comment="Too slow", sentiment=-0.3),
    ])  # fmt: skip
    assert survey_results(db, ws, "nps").responses == 2
    with db.session() as session:
        ann = session.scalar(select(Customer.id).where(Customer.user_id == "ann"))
    assert ann is not None
    report = erase_customer(db, ws, ann, who=TEST)
    assert report.deleted["survey_answers"] == 1
    # Gone at once, before any read refolds the log.
    assert [r[1] for r in stored(db, ws)] == []
    after = survey_results(db, ws, "nps")
    assert (after.responses, after.detractors, after.comments) == (1, 1, 1)
    assert [c.comment for c in survey_comments(db, ws, "nps").items] == ["Too slow"]
    assert results_of(db, ws, "nps", True) == old_results(db, ws, "nps", "nps", True)


def test_a_retention_purge_drops_old_answers_from_the_results(db: Database) -> None:
    ws = workspace(db)
    log(db, ws, [
        answered("ann", "a1", datetime(2022, 3, 1, tzinfo=UTC), survey_id="nps",
                 response_id="r1", score=10, comment="Old news", sentiment=0.0),
        answered("bob", "b1", MARCH, survey_id="nps", response_id="r2", score=3),
    ])  # fmt: skip
    assert survey_results(db, ws, "nps").responses == 2
    with db.transaction() as session:
        set_privacy_settings(session, ws, PrivacySettings(retention_months=12))
    assert apply_retention(db, ws, now=MARCH + 24 * HOUR).purged >= 1
    assert stored(db, ws) == []  # the purged comment is gone at once
    after = survey_results(db, ws, "nps")
    assert (after.responses, after.value, after.comments) == (1, -100.0, 0)


def test_a_merge_moves_the_comment_to_the_surviving_customer(db: Database) -> None:
    ws = workspace(db)
    log(db, ws, [{"type": "track", "event": "survey_answered", "anonymousId": "anon-1",
                  "messageId": "a1", "timestamp": MARCH.isoformat(),
                  "properties": {"survey_id": "nps", "response_id": "r1", "score": 9,
                                 "comment": "Nice", "sentiment": 0.4}}])  # fmt: skip
    log(db, ws, [answered("zed", "z0", MARCH, survey_id="other")])  # Zed exists first
    [before] = survey_comments(db, ws, "nps").items
    log(db, ws, [{"type": "identify", "userId": "zed", "anonymousId": "anon-1",
                  "messageId": "i1", "timestamp": (MARCH + HOUR).isoformat()}])  # fmt: skip
    with db.session() as session:
        live = {
            int(c)
            for c in session.scalars(
                select(Identity.customer_id)
                .join(Customer, Customer.id == Identity.customer_id)
                .where(Identity.value == "anon-1", Customer.merged_into_id.is_(None))
            )
        }
    [after] = survey_comments(db, ws, "nps").items
    assert before.customer == f"#{before.customer_id}"  # anonymous: no email, no user id
    assert live == {after.customer_id} and after.customer == "zed"
