"""The web app under uvicorn on a loopback port, in a thread, over any database: the browser
tests run it on SQLite and on PostgreSQL (the ``db`` fixture's two backends)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from clm.store.engine import Database
from clm.web import create_app
from tests.conftest import free_port


@contextmanager
def serving(db: Database, port: int | None = None) -> Iterator[str]:
    """The app's base URL while it serves ``db`` (on ``port`` if given: a test that stops the
    server and starts it again keeps the page's address)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the web app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
