"""Process-level tuning for CLM's long-running servers (the API and the ingestion writer)."""

from __future__ import annotations

import gc
from functools import cache


@cache
def settle_heap() -> None:
    """Keep the garbage collector off the ingestion path, once a server process has started.

    Each batch allocates tens of thousands of short-lived dicts, and CPython's default
    thresholds then run a collection every 700 allocations, each walking the hundreds of
    thousands of long-lived objects the imports left behind (routes, models, SQLAlchemy
    metadata). Freezing those and collecting young objects less often cut ingestion CPU by
    about a fifth (benchmarks/ingest/README.md). Cycles are still collected. Once a process:
    a test suite starting many apps must not freeze each one's leftovers for good (hence
    ``cache``: the body runs on the first call only).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
