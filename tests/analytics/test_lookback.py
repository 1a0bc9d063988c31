"""The attribution lookback window treats converters and non-converters alike.

The window ends at the journey's last event (the move; for a stay still going at ``until``,
the customer's last touchpoint or the stay's start if later) and reaches ``lookback_days``
back. A seeded random log (with CLM's own sends mixed in, which never count) is checked
against a second implementation written here in plain pandas, and one case by hand.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pandas as pd
import pytest

from clm.analytics import AttributionQuery, attribution, parse_query
from clm.analytics.source import report_source
from clm.engage import eventlog
from clm.store.engine import Database
from tests.analytics.logs import event, load, write_history

DAY = 86_400
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
UNTIL_DAY = 150
LOOKBACK = 30
CHANNELS = ("email", "search", "social")


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _random_log(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(touches: user, ts, mid, channel; stays: user, start, moved_at or NaN)."""
    rng = random.Random(seed)
    touches, stays = [], []
    for i in range(60):
        user = f"u{i:02d}"
        start = T0 + rng.randrange(0, 60) * DAY + 3600
        moved = start + rng.randrange(1, 90) * DAY if rng.random() < 0.4 else None
        stays.append((user, start, moved))
        for k in range(rng.randrange(0, 6)):
            t = start + rng.randrange(-40, 100) * DAY + 60 * k
            if t < T0 + UNTIL_DAY * DAY:
                touches.append((user, t, f"{user}-{k}", rng.choice(CHANNELS)))
    return (
        pd.DataFrame(touches, columns=["user", "ts", "mid", "channel"]),
        pd.DataFrame(stays, columns=["user", "start", "moved"]),
    )


def _expected(touches: pd.DataFrame, stays: pd.DataFrame, until: int) -> dict[str, tuple]:
    """Per channel: (journeys touched, converted journeys, last-touch credit), pandas only."""
    last = touches.groupby("user")["ts"].max().rename("last_touch")
    j = stays.join(last, on="user")
    open_end = j[["start", "last_touch"]].max(axis=1)
    j["end"] = j["moved"].where(j["moved"].notna() & (j["moved"] < until), open_end)
    j["converted"] = j["moved"].notna() & (j["moved"] < until)
    jt = touches.merge(j[["user", "end", "converted"]], on="user")
    jt = jt[(jt.ts >= jt.end - LOOKBACK * DAY) & (jt.ts <= jt.end)]
    reach = jt.drop_duplicates(["user", "channel"])
    result: dict[str, tuple] = {}
    last_touch = jt[jt.converted].sort_values(["ts", "mid"]).groupby("user").tail(1)
    for channel in sorted(set(jt.channel)):
        mine = reach[reach.channel == channel]
        result[channel] = (
            len(mine),
            int(mine.converted.sum()),
            float((last_touch.channel == channel).sum()),
        )
    direct = j[~j.user.isin(jt.user)]
    if len(direct):
        result["(direct)"] = (len(direct), int(direct.converted.sum()),
                              float(direct.converted.sum()))  # fmt: skip
    return result


def _load_log(db: Database, touches: pd.DataFrame, stays: pd.DataFrame, until: int) -> int:
    """The log and its stage history in ``db``; the workspace id."""
    messages = [
        event(r.user, _iso(r.ts), "Ad Clicked", r.mid, channel=r.channel)
        for r in touches.itertuples()
    ]
    messages += [event(u, _iso(T0), "Signed Up", f"{u}-s") for u in stays.user
                 if u not in set(touches.user)]  # fmt: skip
    workspace_id, customers, definition_id = load(db, messages)
    # CLM mails every customer just before the end: never a touchpoint, never an anchor
    sends = [
        eventlog.track({"user_id": u}, "Email Sent", f"s-{u}", {"channel": "email"},
                       datetime.fromtimestamp(until - DAY, UTC), channel="email")
        for u in stays.user
    ]  # fmt: skip
    eventlog.write(db, workspace_id, sends)
    moves: list[tuple[str, str, str | None, str]] = []
    for r in stays.itertuples():
        moves.append((r.user, _iso(r.start), None, "lead"))
        if pd.notna(r.moved):
            moves.append((r.user, _iso(int(r.moved)), "lead", "trial"))
    write_history(db, workspace_id, definition_id, customers, moves)
    return workspace_id


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_lookback_matches_pandas(sqlite_db: Database, engine: str, seed: int) -> None:
    touches, stays = _random_log(seed)
    until = T0 + UNTIL_DAY * DAY
    workspace_id = _load_log(sqlite_db, touches, stays, until)
    query = parse_query(AttributionQuery, {
        "since": _iso(T0), "until": _iso(until), "from_stage": "lead", "to_stage": "trial",
        "lookback_days": LOOKBACK,
    })  # fmt: skip
    with report_source(sqlite_db, workspace_id, engine) as source:  # type: ignore[arg-type]
        (pair,) = attribution(source, query).pairs
    got = {c.value: (c.journeys, c.converted_journeys, c.last_touch) for c in pair.channels}
    assert got == _expected(touches, stays, until)


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_one_source_cut_at_several_ends(sqlite_db: Database, engine: str) -> None:
    """A DuckDB source keeps the whole log's touchpoints and stays and cuts them to each
    report's period in NumPy (a SQL source reads each period's): several ends, read from one
    open source in an order that goes back in time, each match pandas on the log before that
    end; so does a customer filter (email touch in the period), read for the report alone."""
    touches, stays = _random_log(3)
    workspace_id = _load_log(sqlite_db, touches, stays, T0 + UNTIL_DAY * DAY)
    with report_source(sqlite_db, workspace_id, engine) as source:  # type: ignore[arg-type]
        for day, channel in ((UNTIL_DAY, None), (50, None), (100, None), (100, "email")):
            until = T0 + day * DAY
            params = {"since": _iso(T0), "until": _iso(until), "from_stage": "lead",
                      "to_stage": "trial", "lookback_days": LOOKBACK}  # fmt: skip
            if channel:
                params["channel"] = channel
            (pair,) = attribution(source, parse_query(AttributionQuery, params)).pairs
            got = {c.value: (c.journeys, c.converted_journeys, c.last_touch)
                   for c in pair.channels}  # fmt: skip
            seen, of = touches[touches.ts < until], stays[stays.start < until]
            if channel:
                users = set(seen[(seen.channel == channel) & (seen.ts >= T0)].user)
                seen, of = seen[seen.user.isin(users)], stays[stays.user.isin(users)]
            assert 0 < len(seen) < len(touches) or day == UNTIL_DAY  # the end cuts the log
            assert got == _expected(seen, of, until), (day, channel)


def test_an_open_journey_keeps_the_touches_before_its_last(sqlite_db: Database) -> None:
    """Lead from 01-01; until 06-01, lookback 30 days.
    a: email 01-10, search 01-20, then nothing: still in lead at until. Its window ends at its
       last touch (01-20) and reaches 12-21: both touches count (the old window, ending at
       until, kept none).
    b: social 01-05, moves to trial 01-25: window 12-26 .. 01-25, social counts.
    So email and search each reached 1 journey, 0 converted; social 1 of 1."""
    messages = [
        event("a", "2024-01-10", "Ad Clicked", "a1", channel="email"),
        event("a", "2024-01-20", "Ad Clicked", "a2", channel="search"),
        event("b", "2024-01-05", "Ad Clicked", "b1", channel="social"),
    ]
    workspace_id, customers, definition_id = load(sqlite_db, messages)
    moves = [("a", "2024-01-01", None, "lead"), ("b", "2024-01-01", None, "lead"),
             ("b", "2024-01-25", "lead", "trial")]  # fmt: skip
    write_history(sqlite_db, workspace_id, definition_id, customers, moves)
    query = parse_query(AttributionQuery, {"since": "2024-01-01", "until": "2024-06-01",
                                           "from_stage": "lead"})  # fmt: skip
    with report_source(sqlite_db, workspace_id) as source:
        (pair,) = attribution(source, query).pairs
    got = {c.value: (c.journeys, c.converted_journeys) for c in pair.channels}
    assert got == {"email": (1, 0), "search": (1, 0), "social": (1, 1)}
