"""Previewing a stage model before applying it: counts per stage now, and sample transitions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from clm.lifecycle.engines import EngineName
from clm.lifecycle.history import utc
from clm.lifecycle.loader import load_stage_model
from clm.lifecycle.schemas import Preview, TransitionPublic
from clm.lifecycle.service import StepProgress, compute_transitions
from clm.store.engine import Database


def preview_stage_model(
    db: Database,
    workspace_id: int,
    source: str,
    *,
    sample: int = 10,
    engine: EngineName = "duckdb",
    at: datetime | None = None,
    progress: StepProgress | None = None,
) -> Preview:
    """What ``source`` (YAML) would give on this workspace's log; nothing is stored.
    ``progress(what, done, total)`` hears of each step, for a progress bar."""
    model = load_stage_model(source)
    cutoff = int((at or datetime.now(UTC)).timestamp())
    history = compute_transitions(db, workspace_id, model, engine, progress=progress)
    if progress is not None:
        progress("counting customers per stage", 0, 1)
    rows = [r for r in history.to_pylist() if r["ts"] <= cutoff]
    rows.sort(key=lambda r: (r["customer_id"], r["ts"]))
    current: dict[int, str] = {}
    for row in rows:
        current[row["customer_id"]] = row["to_stage"]
    counts = {s.name: 0 for s in model.stages}
    counts.update(Counter(current.values()))
    step = max(1, len(rows) // sample) if sample else len(rows) + 1
    picked = rows[::step][:sample]
    return Preview(
        model=model.name,
        customers=len(current),
        counts=counts,
        stages=[s.name for s in model.stages],
        transitions=len(rows),
        sample=[
            TransitionPublic(
                customer_id=r["customer_id"],
                at=utc(r["ts"]),
                ts=r["ts"],
                from_stage=r["from_stage"],
                to_stage=r["to_stage"],
                kind=model.transition_kind(r["from_stage"], r["to_stage"]),
                rule=r["rule"],
                cause_message_id=r["cause_message_id"],
                cause="event" if r["cause_message_id"] else "time",
            )
            for r in picked
        ],
    )
