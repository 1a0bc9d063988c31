"""Shared fixtures: a real database for each backend CLM supports.

SQLite always runs. PostgreSQL runs when reachable at ``CLM_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); locally it is skipped with the reason, under
``CI=true`` an unreachable server is a failure. Each test run works in its own schema, so
concurrent runs on one server never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clm.store.engine import Database, migrate

POSTGRES_URL = os.environ.get(
    "CLM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLM_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data_file(name: str, *, root: Path | None = None, in_ci: bool = IN_CI) -> Path:
    """A file of the published data sets (CDNOW, sBG tables) in ``CLM_SHARED_DATA``.

    Missing locally: the test is skipped with the reason. Missing under ``CI=true``: the test
    fails, so a CI without the data can never pass by skipping every published-paper check.
    """
    path = (root or SHARED_DATA) / name
    if not path.exists():
        reason = f"{path} not found: set CLM_SHARED_DATA to the shared data directory"
        if in_ci:
            pytest.fail(f"CI=true requires the published data sets. {reason}")
        pytest.skip(reason)
    return path


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        return f"PostgreSQL unreachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL whose connections land in a fresh schema of the test database."""
    problem = _postgres_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL. {problem}")
        pytest.skip(problem)
    schema = f"clm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


_TABLES = (
    "jobs",
    "segment_sizes",
    "segments",
    "audit_log",
    "password_resets",
    "login_failures",
    "user_sessions",
    "memberships",
    "users",
    "privacy_consent_history",
    "privacy_tombstones",
    "marketing_spend",
    "prediction_fits",
    "engage_testimonials",
    "engage_coupon_redemptions",
    "engage_coupons",
    "engage_ledger",
    "engage_referrals",
    "engage_referral_codes",
    "engage_cursors",
    "engage_journey_log",
    "engage_journeys",
    "engage_playbook_goals",
    "engage_playbooks",
    "engage_tasks",
    "engage_surveys",
    "engage_tokens",
    "engage_messages",
    "engage_suppressions",
    "engage_consents",
    "engage_config",
    "lifecycle_runs",
    "health_history",
    "stage_transitions",
    "lifecycle_definitions",
    "events",
    "identity_links",
    "identities",
    "customers",
    "api_keys",
    "workspaces",
)


def _truncate(db: Database) -> None:
    db.extensions.clear()  # caches of what the deleted rows said
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in _TABLES:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def _postgres_db(postgres_url: str) -> Iterator[Database]:
    db = Database.open(postgres_url)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database of each backend."""
    if request.param == "sqlite":
        database = Database.open(f"sqlite:///{tmp_path / 'clm.sqlite'}")
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("_postgres_db")
        _truncate(database)
        yield database


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path / 'clm.sqlite'}")
    yield database
    database.dispose()


__all__ = ["IN_CI", "SHARED_DATA", "migrate", "shared_data_file"]


# --- a real HTTP server on loopback ---------------------------------------------------------

import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import uvicorn  # noqa: E402

from clm.api.app import create_app  # noqa: E402
from clm.store import workspaces as ws  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    db: Database


@pytest.fixture
def live_server(db: Database) -> Iterator[LiveServer]:
    """The real app under uvicorn on a loopback port, in a thread, over the ``db`` backend."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", db)
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Tenant:
    id: int
    slug: str
    write_key: str
    secret_key: str


def make_tenant(db: Database, slug: str = "shop") -> Tenant:
    with db.transaction() as session:
        workspace = ws.create_workspace(session, slug)
        write = ws.issue_key(session, "write", workspace.id)
        secret = ws.issue_key(session, "secret", workspace.id)
    return Tenant(workspace.id, slug, write.key, secret.key)


@pytest.fixture
def tenant(db: Database) -> Tenant:
    return make_tenant(db)
