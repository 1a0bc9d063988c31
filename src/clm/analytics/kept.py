"""Results kept between requests while the data behind them is unchanged: for the overview's
whole-history aggregates, which take seconds at 100,000 customers and are asked for on every
page load.

Each result is stored with a *version* (cheap facts about its inputs, such as the newest row
id and the row count). A request whose version matches gets the kept result. When the data
moved, a result younger than ``stale_after`` seconds is still served (marked not current)
while one background thread recomputes it; an older one, or none, is recomputed at once and
waited for up to ``wait`` seconds (then the caller gets the old result or None, and the next
request finds the new one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    version: Hashable
    at: float
    value: T


class Kept(Generic[T]):
    """A small keyed store of computed results with background refresh."""

    def __init__(self, *, stale_after: float, wait: float, size: int = 64) -> None:
        self.stale_after, self.wait, self.size = stale_after, wait, size
        self._entries: dict[Hashable, _Entry[T]] = {}
        self._running: dict[Hashable, threading.Event] = {}
        self._failed: dict[Hashable, BaseException] = {}
        self._lock = threading.Lock()

    def get(
        self, key: Hashable, version: Hashable, compute: Callable[[], T]
    ) -> tuple[T | None, bool]:
        """(result, current): the kept result for ``key`` at ``version``, or a recent older
        one (current False) while it is recomputed; None if nothing is ready in time."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry.version == version:
            return entry.value, True
        done = self._start(key, version, compute)
        if entry is not None and time.monotonic() - entry.at < self.stale_after:
            return entry.value, False
        done.wait(self.wait)
        with self._lock:
            fresh = self._entries.get(key)
            failed = self._failed.pop(key, None)
        if failed is not None:
            raise failed
        if fresh is not None and fresh.version == version:
            return fresh.value, True
        return (fresh.value, False) if fresh is not None else (None, False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _start(self, key: Hashable, version: Hashable, compute: Callable[[], T]) -> threading.Event:
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            done = self._running[key] = threading.Event()

        def work() -> None:
            try:
                value = compute()
            except BaseException as problem:  # handed to the request waiting for it
                with self._lock:
                    self._failed[key] = problem
            else:
                with self._lock:
                    if len(self._entries) >= self.size and key not in self._entries:
                        oldest = min(self._entries, key=lambda k: self._entries[k].at)
                        del self._entries[oldest]
                    self._entries[key] = _Entry(version, time.monotonic(), value)
            finally:
                with self._lock:
                    self._running.pop(key, None)
                done.set()

        threading.Thread(target=work, name="clm-kept", daemon=True).start()
        return done


def kept_for(db: Any, name: str, *, stale_after: float, wait: float) -> Kept[Any]:
    """The ``Kept`` store ``name`` of one database (in ``db.extensions``, which is cleared
    with the rows it describes, e.g. when tests empty the database)."""
    found = db.extensions.get(name)
    if found is None:
        found = db.extensions[name] = Kept(stale_after=stale_after, wait=wait)
    return found  # type: ignore[no-any-return]
