"""Health re-scoring inside the live loop, behind one small adapter.

The agreed interface is ``clm.lifecycle.score_health`` (score given customers exactly as of
``now``) and ``clm.lifecycle.health_due`` (customers whose stored score the passage of time has
changed). Until the lifecycle package provides them, the loop falls back on today's
``run_health``, a full recompute, run at most every ``full_health_seconds`` and only when
something changed since the last one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import clm.lifecycle as lifecycle
from clm.store.engine import Database

_last_full: dict[tuple[str, int], float] = {}
_owed: set[tuple[str, int]] = set()  # a full run was throttled: do it when allowed
_lock = threading.Lock()


def _by_customer() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    score = getattr(lifecycle, "score_health", None)
    due = getattr(lifecycle, "health_due", None)
    return (score, due) if score is not None and due is not None else None


def rescore_health(
    db: Database,
    workspace_id: int,
    now: datetime,
    touched: Sequence[int],
    full_every: float,
) -> str:
    """Re-score the customers whose inputs changed (``touched``) or whose score is due; says
    what was done: ``"N customers"``, ``"full"`` (the fallback's recompute) or ``"none"``."""
    by_customer = _by_customer()
    if by_customer is not None:
        score_health, health_due = by_customer
        ids = sorted({*touched, *(int(c) for c in health_due(db, workspace_id, now))})
        if not ids:
            return "none"
        score_health(db, workspace_id, now=now, customer_ids=ids)
        return f"{len(ids)} customers"
    key = (str(db.engine.url), workspace_id)
    with _lock:
        if touched:
            _owed.add(key)
        if key not in _owed:
            return "none"
        if time.monotonic() - _last_full.get(key, float("-inf")) < full_every:
            return "none"
        _owed.discard(key)
        _last_full[key] = time.monotonic()
    lifecycle.run_health(db, workspace_id, now=now)
    return "full"
