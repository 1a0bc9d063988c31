"""Data-driven attribution, pure math: Markov-chain removal effects and Shapley values.

* Markov (Anderl et al. 2016, "Mapping the customer journey", first order): journeys are paths
  ``(start) -> touch -> ... -> (conversion | null)``; transition probabilities come from counts
  of consecutive states over *all* journeys, converting or not. The removal effect of a channel
  is ``1 - P(conversion without it) / P(conversion)``, where removing it sends every path that
  reaches it to null; credits are removal effects scaled to sum to the conversions.
* Shapley (Zhao et al. 2018, "Shapley value methods for attribution modeling", the
  characteristic function ``v(S)`` = conversions of journeys whose channel set lies within
  ``S``), computed by enumerating coalitions, so it is only offered for a few channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import factorial

import numpy as np

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"
Counts = Mapping[tuple[str, str], float]


def conversion_probability(counts: Counts, removed: str | None = None) -> float:
    """P(reaching conversion from start) of the first-order chain with these transition counts;
    with ``removed``, that state leads to null."""
    states = sorted({s for pair in counts for s in pair} - {CONVERSION, NULL, removed})
    if START not in states:
        return 0.0
    index = {s: i for i, s in enumerate(states)}
    size = len(states)
    q, b = np.zeros((size, size)), np.zeros(size)
    totals: dict[str, float] = {}
    for (source, _), n in counts.items():
        totals[source] = totals.get(source, 0.0) + n
    for (source, target), n in counts.items():
        if source not in index or not totals[source]:
            continue
        share = n / totals[source]
        if target == CONVERSION:
            b[index[source]] += share
        elif target in index:
            q[index[source], index[target]] += share
    solved = np.linalg.lstsq(np.eye(size) - q, b, rcond=None)[0]
    return float(solved[index[START]])


def markov_credits(
    counts: Counts, conversions: float, channels: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """(credit, removal effect) per channel; credits sum to ``conversions`` (when any)."""
    base = conversion_probability(counts)
    effects = {
        c: (1 - conversion_probability(counts, c) / base) if base > 0 else 0.0 for c in channels
    }
    total = sum(effects.values())
    credits = {c: conversions * e / total if total > 0 else 0.0 for c, e in effects.items()}
    return credits, effects


def shapley_values(conversions_by_set: Mapping[frozenset[str], float]) -> dict[str, float]:
    """Shapley value of each channel for ``v(S) = sum of conversions of sets within S``.

    Enumerates all 2^n coalitions (n = number of channels); values sum to ``v(all)``.
    """
    channels = sorted({c for members in conversions_by_set for c in members})
    n = len(channels)
    bit = {c: 1 << i for i, c in enumerate(channels)}
    value = np.zeros(1 << n)
    for members, conversions in conversions_by_set.items():
        value[sum(bit[c] for c in members)] += conversions
    for i in range(n):  # subset sums: v(S) = sum over masks within S
        step = 1 << i
        for mask in range(1 << n):
            if mask & step:
                value[mask] += value[mask ^ step]
    weights = [factorial(k) * factorial(n - k - 1) / factorial(n) for k in range(n)]
    result = {}
    for c in channels:
        total = 0.0
        for mask in range(1 << n):
            if not mask & bit[c]:
                total += weights[mask.bit_count()] * (value[mask | bit[c]] - value[mask])
        result[c] = total
    return result
