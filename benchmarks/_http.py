"""The benchmarks' HTTP timing, written once: the real app served on loopback in this process,
a page's calls made concurrently as the browser makes them, and their p50/p95.

Scripts one folder down import it after ``sys.path.insert(0, <benchmarks>)``.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    """A free ephemeral port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LoopbackServer:
    """``app`` under uvicorn on a free loopback port, in a thread of this process (so the
    process's CPU time counts the server's too), from construction until ``stop``; ``url`` is
    its base URL."""

    def __init__(self, app: Any) -> None:
        port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline:
                raise SystemExit("the app did not start within 60 s")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def load_page(
    client: httpx.Client,
    pool: ThreadPoolExecutor,
    name: str,
    paths: Sequence[str],
    also: Callable[[], list[httpx.Response]] | None = None,
) -> float:
    """Seconds to GET ``paths`` at once (and then ``also``'s calls), as a page loads; a call
    that is not a 200 ends the run, naming the page and the call."""
    started = time.perf_counter()
    answers = list(pool.map(client.get, paths))
    if also is not None:
        answers += also()
    elapsed = time.perf_counter() - started
    bad = [a for a in answers if a.status_code != 200]
    if bad:
        raise SystemExit(f"{name}: {bad[0].request.url} {bad[0].status_code}")
    return elapsed


def after_warm_up(measure: Callable[[], float], repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` runs of ``measure`` (which returns seconds), after one run
    left out as a warm-up."""
    return [measure() * 1000 for _ in range(repeat + 1)][1:]


def percentiles(milliseconds: Sequence[float]) -> dict[str, float]:
    """p50 (median) and p95 (the nearest rank at or below 95%) of some timings."""
    ordered = sorted(milliseconds)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }
