"""The obvious pandas attribution: journeys (stays in a stage) merged with the customer's
touchpoints, kept inside the lookback window, then each rule's share summed per stage pair and
channel. Written from the report's definitions (``clm.analytics.attribution``), not its code.

Checked against the report: per stage pair the transitions and journeys, and per channel the
first-touch, last-touch, linear, time-decay and position-based credits, the journeys that
reached it and those of them that converted. The Markov and Shapley credits stay report-only.

The merge of journeys with touchpoints is done for a slice of the customers at a time: at 1M
customers it has ~80M rows, too many to hold at once beside the log.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from peers import DAY, PeerLog

DIRECT = "(direct)"
RULES = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
MERGED_ROWS = 10_000_000  # rows of one slice's merge, about


def journeys(log: PeerLog, since: int, until: int) -> pd.DataFrame:
    """Each stay in a stage that overlaps the period: start, when it moved (NaN while it
    lasts) and to which stage (its outcome)."""
    t = log.transitions[log.transitions.ts < until].sort_values(["customer_id", "ts"])
    following = t.groupby("customer_id")[["ts", "to_stage"]].shift(-1)
    stays = pd.DataFrame({
        "customer_id": t.customer_id, "stage": t.to_stage, "start": t.ts,
        "moved": following.ts, "outcome": following.to_stage,
    })  # fmt: skip
    stays = stays[stays.moved.isna() | (stays.moved >= since)]
    return stays.reset_index(drop=True).rename_axis("journey").reset_index()


def touchpoints(log: PeerLog, until: int, dimension: str = "channel") -> pd.DataFrame:
    """The customers' own events with a value of the dimension before ``until``."""
    mine = log.mine
    touches = mine[(mine.ts < until) & mine[dimension].notna()]
    return touches[["customer_id", "ts", "message_id", dimension]].rename(
        columns={dimension: "value"}
    )


def window_touches(stays: pd.DataFrame, touches: pd.DataFrame,
                   lookback: int) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Every (journey, touchpoint) with the touchpoint in the journey's window: up to
    ``lookback`` seconds before its end (the move; still going: the customer's last
    touchpoint, or the stay's start if later), end included; and the stays with their end."""
    last_touch = touches.groupby("customer_id").ts.max()
    still = np.maximum(stays.start, stays.customer_id.map(last_touch).fillna(stays.start))
    stays = stays.assign(end=stays.moved.fillna(still).astype("int64"))
    slices = max(1, len(touches) * len(stays) // max(1, stays.customer_id.nunique())
                 // MERGED_ROWS)  # fmt: skip
    parts = []
    for part in range(slices):
        mine = stays[stays.customer_id % slices == part]
        theirs = touches[touches.customer_id % slices == part]
        merged = mine[["journey", "customer_id", "end"]].merge(theirs, on="customer_id")
        inside = (merged.ts >= merged.end - lookback) & (merged.ts <= merged.end)
        parts.append(merged[inside].drop(columns="customer_id"))
    found = pd.concat(parts, ignore_index=True)
    return found.sort_values(["journey", "ts", "message_id"], ignore_index=True), stays


def credits(hits: pd.DataFrame, half_life_days: float) -> pd.DataFrame:
    """Each touchpoint's share of its journey's one credit under every rule."""
    by_journey = hits.groupby("journey")
    position, size = by_journey.cumcount(), by_journey.journey.transform("size")
    decay = np.exp(-(hits.end - hits.ts) * np.log(2) / (half_life_days * DAY))
    first, last = position == 0, position == size - 1
    middle = 0.2 / (size - 2).clip(lower=1)
    return pd.DataFrame({
        "first_touch": first.astype(float),
        "last_touch": last.astype(float),
        "linear": 1.0 / size,
        "time_decay": decay / decay.groupby(hits.journey).transform("sum"),
        "position_based": np.select([size == 1, size == 2, first | last], [1.0, 0.5, 0.4],
                                    middle),
    })  # fmt: skip


def attribution(log: PeerLog, lookback_days: float = 30, half_life_days: float = 7,
                dimension: str = "channel") -> dict[str, Any]:  # fmt: skip
    """Per stage pair: transitions, journeys out of the stage, and per channel the credits of
    the five rules, its journeys and converted journeys."""
    since, until = log.period()
    stays = journeys(log, since, until)
    hits, stays = window_touches(stays, touchpoints(log, until, dimension),
                                 int(lookback_days * DAY))  # fmt: skip
    hits = hits.join(stays.set_index("journey")[["stage", "outcome"]], on="journey")
    shares = pd.concat([hits[["stage", "outcome", "value"]], credits(hits, half_life_days)],
                       axis=1)  # fmt: skip
    converted = shares[shares.outcome.notna()]
    sums = converted.groupby(["stage", "outcome", "value"], observed=True)[list(RULES)].sum()
    reached = hits.drop_duplicates(["journey", "value"])
    reach = reached.groupby(["stage", "outcome", "value"], observed=True, dropna=False).size()
    stays["direct"] = ~stays.journey.isin(hits.journey)
    result: dict[str, Any] = {}
    for (stage, target), moves in stays.groupby(["stage", "outcome"]).size().items():
        out = stays[stays.stage == stage]
        channels: dict[str, dict[str, Any]] = {}
        for (s, outcome, value), n in reach.items():
            if s != stage:
                continue
            row = channels.setdefault(str(value), {"journeys": 0, "converted_journeys": 0})
            row["journeys"] += int(n)
            row["converted_journeys"] += int(n) if outcome == target else 0
        direct = out[out.direct]
        if len(direct):
            channels[DIRECT] = {
                "journeys": len(direct),
                "converted_journeys": int((direct.outcome == target).sum()),
            }
        for value, row in channels.items():
            found = (stage, target, value) in sums.index
            for rule in RULES:
                credit = sums.loc[(stage, target, value), rule] if found else 0.0
                row[rule] = float(row["converted_journeys"]) if value == DIRECT else credit
                row[rule] = round(float(row[rule]), 6)
            row["conversion_rate"] = round(row["converted_journeys"] / row["journeys"], 6)
        result[f"{stage} -> {target}"] = {
            "transitions": int(moves), "journeys": len(out),
            "conversion_rate": round(int(moves) / len(out), 6), "channels": channels,
        }  # fmt: skip
    return result
