"""Where public links point when CLM serves on a port of its own choosing: ``clm serve --port``
(and so the demo built with ``--no-serve`` and served after, as the demo flow does) used to
give survey links on the default port 8000, a page nobody answers. Without ``CLM_PUBLIC_URL``
the links follow the served address; with it (environment or ``.env``) they follow it, for
``clm serve`` and for ``clm demo`` alike."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from clm.config import Settings
from clm.store.engine import Database
from tests.conftest import free_port, make_tenant

pytestmark = pytest.mark.slow


@contextmanager
def clm_serve(folder: Path, url: str, port: int) -> Iterator[str]:
    """``clm serve --port`` run as a user runs it, from ``folder`` (where a ``.env`` is read)."""
    env = {k: v for k, v in os.environ.items() if k != "CLM_PUBLIC_URL"}
    env.update(CLM_DATABASE_URL=url, CLM_DATA_DIR=str(folder), CLM_ENV="test")
    base = f"http://127.0.0.1:{port}"
    with (folder / "server.log").open("ab") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "clm", "serve", "--port", str(port)],
            cwd=folder, env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        for _ in range(900):  # until it answers (a start on two busy cores), not a timing
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError((folder / "server.log").read_text())
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def answer_link(base: str, secret: str) -> str:
    made = httpx.post(
        f"{base}/api/v1/engage/surveys",
        json={"key": "nps", "type": "nps"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert made.status_code in (200, 201), made.text
    return str(made.json()["answer_link"])


def test_survey_links_point_at_the_served_port_unless_told(
    sqlite_db: Database, tmp_path: Path
) -> None:
    tenant = make_tenant(sqlite_db, "shop")
    url = sqlite_db.engine.url.render_as_string(hide_password=False)
    port = free_port()
    with clm_serve(tmp_path, url, port) as base:
        assert answer_link(base, tenant.secret_key) == f"{base}/public/surveys/answer"
    # A public address in .env (behind a proxy, say) is the one links carry.
    (tmp_path / ".env").write_text("CLM_PUBLIC_URL=https://clm.example.com\n")
    with clm_serve(tmp_path, url, free_port()) as base:
        link = answer_link(base, tenant.secret_key)
        assert link == "https://clm.example.com/public/surveys/answer"


def test_the_served_public_url() -> None:
    """``clm demo`` asks the same question with its port: the set address wins, else this one."""
    unset = Settings(_env_file=None)
    assert unset.served_public_url("127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert unset.served_public_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert unset.served_public_url("::", 9000) == "http://[::1]:9000"
    assert unset.served_public_url("fe80::1", 80) == "http://[fe80::1]:80"
    told = Settings(_env_file=None, public_url="https://clm.example.com")
    assert told.served_public_url("127.0.0.1", 8123) == "https://clm.example.com"
