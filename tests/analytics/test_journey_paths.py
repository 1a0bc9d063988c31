"""The NumPy journey counts (``journey_paths``) against a plain-Python reference written here:
each journey's window and touchpoints found by a loop over the customer's touchpoints, ties
at the same second put in message id order, and every count and share worked out per journey.

The inputs are unsorted Arrow tables as an engine would return them (touchpoints sorted only
by customer and time; journeys in any order), with customers without touchpoints, journeys
still going, touches at the same second, and windows that reach before the first touchpoint.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pytest

from clm.analytics.attribution_models import START
from clm.analytics.journey_paths import Journeys, Stays, Touchpoints, path_counts

DAY = 86_400
STAGES = ("lead", "trial", "customer")
VALUES = ("email", "search", "social", "display")


def _log(
    seed: int, values: tuple[str, ...] = VALUES
) -> tuple[list[tuple[int, int, str, str]], list[tuple[Any, ...]]]:
    """(touches: customer, ts, message id, value; journeys: customer, start, end or None,
    stage, next stage or None)."""
    rng = random.Random(seed)
    touches, journeys = [], []
    for customer in range(1, 40):
        t = 1_000_000 + rng.randrange(0, 50) * DAY
        for k in range(rng.randrange(0, 4)):
            stage = rng.choice(STAGES)
            if rng.random() < 0.7 or k == 3:
                moved = t + rng.randrange(0, 40 * DAY)
                journeys.append((customer, t, moved, stage, rng.choice(STAGES)))
                t = moved
            else:
                journeys.append((customer, t, None, stage, None))
                break
        if customer % 7:  # every seventh customer has no touchpoint
            for m in range(rng.randrange(0, 12)):
                ts = 1_000_000 + rng.randrange(0, 120) * DAY
                if rng.random() < 0.3 and touches and touches[-1][0] == customer:
                    ts = touches[-1][1]  # a tie at the same second
                touches.append(
                    (customer, ts, f"m{rng.randrange(10**6):06d}-{m}", rng.choice(values))
                )
    return touches, journeys


def _arrow(touches: list[tuple[int, int, str, str]],
           journeys: list[tuple[Any, ...]]) -> tuple[pa.Table, pa.Table]:  # fmt: skip
    rng = random.Random(5)
    by_time = sorted(touches, key=lambda r: (r[0], r[1], rng.random()))  # ties in any order
    shuffled = rng.sample(journeys, len(journeys))
    t = pa.table({
        "customer_id": pa.array([r[0] for r in by_time], pa.int64()),
        "touch_ts": pa.array([r[1] for r in by_time], pa.int64()),
        "touch_id": [r[2] for r in by_time], "value": [r[3] for r in by_time],
    })  # fmt: skip
    j = pa.table({
        "customer_id": pa.array([r[0] for r in shuffled], pa.int64()),
        "start_ts": pa.array([r[1] for r in shuffled], pa.int64()),
        "end_ts": pa.array([r[2] for r in shuffled], pa.int64()),
        "stage": [r[3] for r in shuffled], "next_stage": [r[4] for r in shuffled],
    })  # fmt: skip
    return t, j


def _reference(touches: list[tuple[int, int, str, str]], journeys: list[tuple[Any, ...]],
               lookback: float, half_life: float) -> dict[str, Any]:  # fmt: skip
    mine: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for customer, ts, mid, value in touches:
        mine[customer].append((ts, mid, value))
    totals: Counter[tuple[str, str | None]] = Counter()
    touched: Counter[tuple[str, str | None]] = Counter()
    steps: Counter[tuple[str, str | None, str, str]] = Counter()
    ends: Counter[tuple[str, str | None, str]] = Counter()
    credits: dict[tuple[str, str | None, str], dict[str, float]] = defaultdict(
        lambda: dict.fromkeys(("first_touch", "last_touch", "linear", "time_decay",
                               "position_based"), 0.0))  # fmt: skip
    reach: Counter[tuple[str, str | None, str]] = Counter()
    for customer, start, moved, stage, next_stage in journeys:
        own = sorted(mine[customer])  # by time, then message id
        if moved is not None:
            end = moved
        else:
            end = max(start, max((ts for ts, _, _ in own), default=start))
        path = [(ts, v) for ts, _, v in own if end - lookback * DAY <= ts <= end]
        key = (stage, next_stage)
        totals[key] += 1
        if not path:
            continue
        touched[key] += 1
        for i, (_, v) in enumerate(path):
            steps[(*key, v, path[i - 1][1] if i else START)] += 1
        ends[(*key, path[-1][1])] += 1
        for v in {v for _, v in path}:
            reach[(*key, v)] += 1
        if next_stage is None:
            continue
        n = len(path)
        decay = [math.exp(-(end - ts) * math.log(2) / (half_life * DAY)) for ts, _ in path]
        for i, (_, v) in enumerate(path):
            c = credits[(*key, v)]
            c["first_touch"] += i == 0
            c["last_touch"] += i == n - 1
            c["linear"] += 1 / n
            c["time_decay"] += decay[i] / sum(decay)
            c["position_based"] += (
                1.0 if n == 1 else 0.5 if n == 2 else 0.4 if i in (0, n - 1) else 0.2 / (n - 2)
            )
    return {"totals": totals, "touched": touched, "steps": steps, "ends": ends,
            "credits": credits, "reach": reach}  # fmt: skip


MANY = tuple(f"campaign-{i:02d}" for i in range(20))  # more than a set of bits is counted for


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("lookback", [30, 7.5])
@pytest.mark.parametrize("values", [VALUES, MANY], ids=["4 values", "20 values"])
def test_path_counts_match_a_per_journey_reference(
    seed: int, lookback: float, values: tuple[str, ...]
) -> None:
    touches, journeys = _log(seed, values)
    assert any(a[:2] == b[:2] for a, b in pairwise(touches))  # ties
    expected = _reference(touches, journeys, lookback, 7)
    t, j = _arrow(touches, journeys)
    got = path_counts(Touchpoints.from_arrow(t), Journeys.from_arrow(j), lookback, 7, 12)
    assert {(r["stage"], r["outcome"]): r["journeys"] for r in got.totals} == expected["totals"]
    assert {k: c for k, c in got.touched.items() if c} == expected["touched"]
    assert {(r["stage"], r["outcome"], r["value"], r["prev"]): r["n"]
            for r in got.steps} == expected["steps"]  # fmt: skip
    assert {(r["stage"], r["outcome"], r["value"]): r["n"] for r in got.ends} == expected["ends"]
    assert {(r["stage"], r["outcome"], r["value"]): r["journeys"]
            for r in got.reach} == expected["reach"]  # fmt: skip
    credits = {(r["stage"], r["outcome"], r["value"]): r for r in got.credits}
    assert set(credits) == set(expected["credits"])
    for key, rules in expected["credits"].items():
        for rule, value in rules.items():
            assert credits[key][rule] == pytest.approx(value, abs=1e-9)
    # channel sets: journeys per (stage, outcome, set of values reached)
    sets: Counter[tuple[str, str | None, frozenset[str]]] = Counter()
    if len(got.values) + 1 > 12:  # too many for Shapley values: no channel sets
        assert got.masks is None
        return
    assert got.masks is not None
    for r in got.masks:
        members = frozenset(v for i, v in enumerate(got.values) if r["mask"] >> i & 1)
        sets[(r["stage"], r["outcome"], members)] += r["n"]
    assert sum(sets.values()) == sum(expected["touched"].values())


def test_ties_at_the_same_second_follow_the_message_id() -> None:
    """Three touches at one second: the first and last touch are the lowest and highest
    message ids, whatever order the engine returned them in."""
    t = pa.table({
        "customer_id": pa.array([1, 1, 1], pa.int64()), "touch_ts": pa.array([50, 50, 50]),
        "touch_id": ["b", "c", "a"], "value": ["search", "social", "email"],
    })  # fmt: skip
    j = pa.table({
        "customer_id": pa.array([1], pa.int64()), "start_ts": pa.array([10]),
        "end_ts": pa.array([60]), "stage": ["lead"], "next_stage": ["trial"],
    })  # fmt: skip
    got = path_counts(Touchpoints.from_arrow(t), Journeys.from_arrow(j), 30, 7, 12)
    credit = {r["value"]: r for r in got.credits}
    assert credit["email"]["first_touch"] == 1.0  # message "a"
    assert credit["social"]["last_touch"] == 1.0  # message "c"
    steps = {(r["prev"], r["value"]) for r in got.steps}
    assert steps == {(START, "email"), ("email", "search"), ("search", "social")}


@pytest.mark.parametrize("stage", [None, "trial"])
def test_the_whole_log_cut_to_a_period_matches_the_reference_on_that_period(
    stage: str | None,
) -> None:
    """What a DuckDB source keeps (every touchpoint and stay, sorted once) cut to a period in
    NumPy (``before``, ``Stays.journeys``) counts as the reference does on the log as it was
    then, cut here by hand: touches before ``until``; stays started before it, a move at or
    after it not yet made, stays that moved before ``since`` left out."""
    touches, journeys = _log(4)
    t, j = _arrow(touches, journeys)
    kept_touches, kept_stays = Touchpoints.from_arrow(t), Stays.from_arrow(j)
    for since, until in ((1_000_000 + 20 * DAY, 1_000_000 + 60 * DAY), (0, 1_000_000 + 45 * DAY)):
        seen = [r for r in touches if r[1] < until]
        then = []
        for customer, start, moved, at, target in journeys:
            if start >= until or (stage is not None and at != stage):
                continue
            if moved is not None and moved >= until:
                moved, target = None, None
            if moved is None or moved >= since:
                then.append((customer, start, moved, at, target))
        assert 0 < len(seen) < len(touches) and 0 < len(then) < len(journeys)
        expected = _reference(seen, then, 30, 7)
        got = path_counts(kept_touches.before(until),
                          kept_stays.journeys(since, until, stage), 30, 7, 12)  # fmt: skip
        assert {(r["stage"], r["outcome"]): r["journeys"] for r in got.totals} == dict(
            expected["totals"]
        )
        assert {(r["stage"], r["outcome"], r["value"], r["prev"]): r["n"]
                for r in got.steps} == expected["steps"]  # fmt: skip
        assert {(r["stage"], r["outcome"], r["value"]): r["journeys"]
                for r in got.reach} == expected["reach"]  # fmt: skip
        credits = {(r["stage"], r["outcome"], r["value"]): r for r in got.credits}
        assert set(credits) == set(expected["credits"])
        for key, rules in expected["credits"].items():
            for rule, value in rules.items():
                assert credits[key][rule] == pytest.approx(value, abs=1e-9)
