"""Each survey response's latest answer, stored (``survey_answers``): what a survey's results
and comments read, instead of every revision in the log.

A response is written to the log more than once (a comment added after a one-click answer is
revision 2 of the same ``response_id``). Its stored row holds

* the score of its latest revision that has a score, and that revision's time: the results
  count each response once, at that time (as ``clm.analytics.feedback`` counts it);
* the comment and its sentiment of its latest revision that has a comment.

"Latest" is the rank (revision, time, message id), so revisions may arrive in any order: a
revision replaces a stored half only when it ranks higher. Folding the log all at once or a
few events at a time, in any order, gives the same rows: the incremental path equals the
rebuild by construction, and the tests check it against the old pass over the log.

The rows are kept by a cursor over the log (``engage_cursors``): ``catch_up`` folds the
``survey_answered`` events past it, found through a partial index of them by id, so no other
event and no ingestion pays for it. The engagement tick and every read run it through
``ensure_answers`` (one index probe when nothing is new), so an answer acknowledged a
moment ago is in the results at once, whichever path wrote it (the answer link, the tracking
API, an import). A workspace upgraded with answers in its log is filled by its first read or
tick. A change of the definitions here (``VERSION``) or a deletion of events (retention,
erasure: ``invalidate_answers``) empties the rows and refolds the log (an erasure deletes the
person's rows first, ``forget_identities``, to count them).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.orm import Session

from clm.engage.playbooks.journeys import cursor, set_cursor
from clm.engage.surveys.service import EVENT
from clm.store.engine import Database
from clm.store.locks import until_commit
from clm.store.models import Event, SurveyAnswer, table_of
from clm.store.settled import settled_top

CURSOR, VERSION_CURSOR = "surveys.answers", "surveys.answers.version"
VERSION = 1  # of the definitions below: a change refolds every workspace's log
CHUNK = 5_000  # answer events read per statement
_KEYS = 500  # stored rows looked up per statement
_KEY_LIMIT = 255  # the column's width: a longer response id is stored as its digest
_SURVEY_KEY_LIMIT = 64  # a survey key is at most 64 characters: a longer id names none

Rank = tuple[int, int, str]  # revision, ts, message id


@dataclass(frozen=True)
class Revision:
    """One ``survey_answered`` event as the results see it."""

    survey_key: str
    response_key: str
    identity_id: int
    rank: Rank
    score: int | None
    comment: str | None
    sentiment: float | None


@dataclass
class Latest:
    """A response's stored row: the score and the comment of its latest revisions having one."""

    identity_id: int
    score: int | None = None
    score_rank: Rank | None = None
    comment: str | None = None
    sentiment: float | None = None
    comment_rank: Rank | None = None


def _number(value: Any) -> float | None:
    """A finite number from a JSON value (a numeric string too), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def response_key(response_id: Any, message_id: str) -> str:
    """``r:<response_id>``, or ``m:<message_id>`` for an answer without one (it counts alone)."""
    key = f"r:{response_id}" if response_id else f"m:{message_id}"
    if len(key) > _KEY_LIMIT:
        key = "h:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def revision_of(
    identity_id: int, message_id: str, ts: int, properties: dict[str, Any]
) -> Revision | None:
    """The event's answer, or None when it belongs to no survey or has neither a score nor a
    comment (the results do not see it)."""
    survey = properties.get("survey_id")
    if not isinstance(survey, str) or not survey or len(survey) > _SURVEY_KEY_LIMIT:
        return None
    score = _number(properties.get("score"))
    raw_comment = properties.get("comment")
    if score is None and raw_comment is None:
        return None
    revision = _number(properties.get("revision"))
    return Revision(
        survey_key=survey,
        response_key=response_key(properties.get("response_id"), message_id),
        identity_id=identity_id,
        rank=(int(revision) if revision else 1, int(ts), message_id),
        score=int(score) if score is not None else None,
        comment=None if raw_comment is None else str(raw_comment),
        sentiment=_number(properties.get("sentiment")),
    )


def fold(stored: Latest | None, revision: Revision) -> Latest:
    """``stored`` with ``revision`` added: each half taken when the revision ranks higher."""
    row = stored or Latest(identity_id=revision.identity_id)
    ranks = [r for r in (row.score_rank, row.comment_rank) if r is not None]
    if not ranks or revision.rank > max(ranks):
        row.identity_id = revision.identity_id  # who gave the response's latest answer
    if revision.score is not None and (row.score_rank is None or revision.rank > row.score_rank):
        row.score, row.score_rank = revision.score, revision.rank
    if revision.comment is not None and (
        row.comment_rank is None or revision.rank > row.comment_rank
    ):
        row.comment, row.sentiment = revision.comment, revision.sentiment
        row.comment_rank = revision.rank
    return row


def _lock(session: Session, workspace_id: int) -> None:
    """One catch-up per workspace at a time."""
    until_commit(session, "survey-answers", workspace_id)


def _answer_events(session: Session, workspace_id: int, after: int, upto: int) -> list[Any]:
    return list(
        session.execute(
            select(Event.id, Event.identity_id, Event.message_id, Event.ts, Event.properties)
            .where(
                Event.workspace_id == workspace_id,
                # Inline, so the planner matches the partial index's WHERE.
                Event.name == literal(EVENT, literal_execute=True),
                Event.id > after,
                Event.id <= upto,
            )
            .order_by(Event.id)
            .limit(CHUNK)
        ).all()
    )


def _stored(
    session: Session, workspace_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Latest]:
    by_survey: dict[str, list[str]] = {}
    for survey, response in keys:
        by_survey.setdefault(survey, []).append(response)
    found = {}
    for survey, responses in by_survey.items():
        for start in range(0, len(responses), _KEYS):
            for r in session.scalars(
                select(SurveyAnswer).where(
                    SurveyAnswer.workspace_id == workspace_id,
                    SurveyAnswer.survey_key == survey,
                    SurveyAnswer.response_key.in_(responses[start : start + _KEYS]),
                )
            ):
                found[(r.survey_key, r.response_key)] = _latest(r)
    return found


def _latest(r: SurveyAnswer) -> Latest:
    def rank(revision: int | None, ts: int | None, message_id: str | None) -> Rank | None:
        if revision is None or ts is None or message_id is None:
            return None
        return (revision, ts, message_id)

    return Latest(
        identity_id=r.identity_id,
        score=r.score,
        score_rank=rank(r.score_revision, r.score_ts, r.score_message_id),
        comment=r.comment,
        sentiment=r.sentiment,
        comment_rank=rank(r.comment_revision, r.comment_ts, r.comment_message_id),
    )


def _columns(workspace_id: int, key: tuple[str, str], row: Latest) -> dict[str, Any]:
    score, comment = row.score_rank or (None, None, None), row.comment_rank or (None, None, None)
    return {
        "workspace_id": workspace_id, "survey_key": key[0], "response_key": key[1],
        "identity_id": row.identity_id, "score": row.score, "score_revision": score[0],
        "score_ts": score[1], "score_message_id": score[2], "comment": row.comment,
        "sentiment": row.sentiment, "comment_revision": comment[0], "comment_ts": comment[1],
        "comment_message_id": comment[2],
    }  # fmt: skip


def _fold_events(session: Session, workspace_id: int, events: Sequence[Any]) -> None:
    """Fold a batch of answer events into the stored rows they touch (one rewrite each)."""
    revisions = [
        r
        for e in events
        if (r := revision_of(int(e.identity_id), str(e.message_id), int(e.ts), e.properties))
        is not None
    ]
    keys = {(r.survey_key, r.response_key) for r in revisions}
    rows = _stored(session, workspace_id, keys)
    for r in revisions:
        key = (r.survey_key, r.response_key)
        rows[key] = fold(rows.get(key), r)
    by_survey: dict[str, list[str]] = {}
    for survey, response in rows:
        by_survey.setdefault(survey, []).append(response)
    for survey, responses in by_survey.items():
        for start in range(0, len(responses), _KEYS):
            session.execute(
                delete(SurveyAnswer).where(
                    SurveyAnswer.workspace_id == workspace_id,
                    SurveyAnswer.survey_key == survey,
                    SurveyAnswer.response_key.in_(responses[start : start + _KEYS]),
                )
            )
    if rows:  # Core's executemany: the ORM's bulk path cost most of a rebuild's time
        session.connection().execute(
            insert(table_of(SurveyAnswer)),
            [_columns(workspace_id, k, row) for k, row in rows.items()],
        )


def catch_up(db: Database, workspace_id: int) -> int:
    """Fold the survey answers logged since the last catch-up into the stored rows (all of
    them after a change of ``VERSION`` or an invalidation); returns the events read."""
    read = 0
    # Only as far as every smaller id is committed (PostgreSQL commits ids out of order): an
    # answer committed later under the cursor would never be folded. A writer that may hold a
    # smaller id still open: the rows stay as they are until the next catch-up.
    top = settled_top(db, "events", workspace_id=workspace_id)
    if top is None:
        return 0
    with db.transaction() as session:
        _lock(session, workspace_id)
        done = cursor(session, workspace_id, CURSOR)
        if cursor(session, workspace_id, VERSION_CURSOR) != VERSION:
            session.execute(delete(SurveyAnswer).where(SurveyAnswer.workspace_id == workspace_id))
            done = 0
        while events := _answer_events(session, workspace_id, done, top):
            _fold_events(session, workspace_id, events)
            done, read = int(events[-1].id), read + len(events)
            if len(events) < CHUNK:
                break
        set_cursor(session, workspace_id, CURSOR, done)
        set_cursor(session, workspace_id, VERSION_CURSOR, VERSION)
    return read


def ensure_answers(db: Database, workspace_id: int) -> int:
    """Catch the stored rows up if any answer arrived since (an index probe; no write lock
    taken when nothing is new); returns the events read."""
    with db.session() as session:
        top = session.scalar(
            select(func.max(Event.id)).where(
                Event.workspace_id == workspace_id,
                Event.name == literal(EVENT, literal_execute=True),
            )
        )
        done = cursor(session, workspace_id, CURSOR)
        current = cursor(session, workspace_id, VERSION_CURSOR) == VERSION
    if not current or int(top or 0) > done:
        return catch_up(db, workspace_id)
    return 0


def invalidate_answers(session: Session, workspace_id: int) -> None:
    """After events were deleted: the rows go now (a purged answer's comment with them), and
    the next catch-up, at the latest the next read, refolds the whole log."""
    session.execute(delete(SurveyAnswer).where(SurveyAnswer.workspace_id == workspace_id))
    set_cursor(session, workspace_id, VERSION_CURSOR, 0)


def forget_identities(session: Session, workspace_id: int, identity_ids: Sequence[int]) -> int:
    """Delete the stored answers of an erased person's identities now (they hold their
    comments); returns the rows deleted."""
    deleted = 0
    for start in range(0, len(identity_ids), _KEYS):
        result = session.execute(
            delete(SurveyAnswer).where(
                SurveyAnswer.workspace_id == workspace_id,
                SurveyAnswer.identity_id.in_(identity_ids[start : start + _KEYS]),
            )
        )
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
