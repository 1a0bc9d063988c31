"""The benchmarks' shared HTTP timing (``benchmarks/_http.py``) on a real server over
loopback: a page's calls answered, a failing call naming its page, the warm-up left out, and
p50/p95 worked out by hand."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]


def _http() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "benchmarks_http", ROOT / "benchmarks" / "_http.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percentiles_by_hand() -> None:
    bench = _http()
    # 1..20 ms: the median of 10 and 11; p95 the nearest rank int(0.95 * 20) = 19, i.e. 20.
    assert bench.percentiles([float(n) for n in range(20, 0, -1)]) == {"p50": 10.5, "p95": 20.0}
    assert bench.percentiles([7.0]) == {"p50": 7.0, "p95": 7.0}
    runs = iter([5.0, 0.001, 0.002, 0.003])  # seconds; the first is the warm-up
    assert bench.after_warm_up(lambda: next(runs), 3) == pytest.approx([1.0, 2.0, 3.0])


def test_a_page_is_loaded_over_loopback_and_a_failing_call_names_its_page() -> None:
    bench = _http()
    app = FastAPI()
    seen: list[str] = []

    @app.get("/ok/{n}")
    def ok(n: int) -> dict[str, int]:
        seen.append(f"ok/{n}")
        return {"n": n}

    server = bench.LoopbackServer(app)
    try:
        with httpx.Client(base_url=server.url) as client, ThreadPoolExecutor(4) as pool:
            took = bench.load_page(client, pool, "two calls", ["/ok/1", "/ok/2"])
            assert took > 0 and sorted(seen) == ["ok/1", "ok/2"]
            with pytest.raises(SystemExit) as failed:
                bench.load_page(client, pool, "a page", ["/ok/3", "/missing"])
            assert str(failed.value) == f"a page: {server.url}/missing 404"
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/ok/4")
