"""Settings: one object, read from the environment (``CLM_*``) and an optional ``.env`` file.

Every part of CLM (storage, ingestion, engagement, sign-in) reads this one ``Settings``
(``get_settings()``), the live loop's knobs (``CLM_LIVE_*``) included.

``CLM_SECRET_KEY`` signs every public link (survey answers, unsubscribes, referral landings) and
keys the erasure tombstones. Outside local and test mode (``CLM_ENV``) a missing or well-known
default secret is refused; in local mode one is generated once and kept under the data
directory, readable by its owner only.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clm.errors import ClmError

_DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "test"})


def _default_data_dir() -> Path:
    return Path.home() / ".clm"


class Settings(BaseSettings):
    """Everything CLM can be told from outside; embedded SQLite needs no setting at all."""

    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Segment's documented limits: 32 KB per message, 500 KB per batch request.
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    log_level: str = "INFO"
    # FULL: a committed event survives a power cut (one disk flush per commit). NORMAL: it
    # survives a crash of CLM or a kill, not of the machine; faster on slow disks.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Set by ``clm serve`` for its HTTP workers: where the ingestion writer process listens,
    # and the per-run token it asks for. Unset, each app writes from a thread of its own.
    ingest_socket: str | None = None
    ingest_token: SecretStr | None = None

    # --- engagement: public links, the task queue, outbound safety ---
    env: Literal["local", "test", "production"] = "local"
    secret_key: SecretStr | None = None
    # The address people reach CLM at: public links (surveys, unsubscribes, referrals, password
    # resets) point here, and the API's same-origin check compares with it.
    public_url: str = "http://127.0.0.1:8000"
    # redis://host:port/db for Redis, else a SQLite file for the embedded queue.
    queue_url: str | None = None
    engage_lease_seconds: int = 60
    engage_batch_size: int = 200
    # Enqueue a delivery task after each commit that creates messages.
    engage_notify: bool = True
    # Outbound safety (webhook and SMS targets, see ``clm.engage.delivery.outbound``):
    # server-wide settings only an operator can change, never a tenant. Plain http is refused
    # unless allowed; loopback, link-local and private targets are refused unless their network
    # is listed here (comma-separated CIDRs, e.g. ``127.0.0.0/8,10.1.0.0/16``).
    outbound_allow_http: bool = False
    outbound_allowed_networks: str = ""

    # --- the live loop (``clm worker``): how soon, how often, and when to refit ---
    # Off: the worker only delivers the outbox and runs the engagement tick (the old worker).
    live_enabled: bool = True
    # Whether this process nudges the worker after storing events: ``clm serve`` turns it on.
    live_nudge: bool = False
    # The ingestion path nudges the worker at most this often per workspace and process, so a
    # burst of requests costs one queue write, not one per request.
    live_nudge_seconds: float = Field(default=0.2, ge=0.0, le=60.0)
    # How long the embedded (SQLite) queue may sleep between polls when idle: the worst-case
    # pick-up delay of a nudge. Redis blocks on the queue and needs no polling.
    live_poll_seconds: float = Field(default=0.5, ge=0.05, le=10.0)
    # A pass schedules the next one for the next due moment (a lapse, a deadline, a journey's
    # wait, a health change) when it falls within this horizon; the minute sweep covers the rest.
    live_lookahead_seconds: float = Field(default=3600.0, ge=1.0, le=86_400.0)
    # Predictions are refitted every day at this hour (UTC) ...
    live_predict_hour: int = Field(default=3, ge=0, le=23)
    # ... and after a large import: this many new customer events since the last refit.
    live_predict_after_events: int = Field(default=10_000, ge=1)

    # --- sign-in: sessions, lockout, password resets ---
    session_hours: int = 12
    # auto: Secure when the request came over HTTPS (behind a proxy, run uvicorn with
    # --proxy-headers so it knows); always / never to force it.
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    # Lockout: this many failures for one email within the window lock it for the window.
    login_max_failures: int = 5
    # Rate limit: this many failures from one client address within the window.
    login_max_client_failures: int = 20
    login_window_minutes: int = 15
    reset_link_minutes: int = 60

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'clm.sqlite'}"

    @property
    def queue_target(self) -> str:
        return self.queue_url or str(self.data_dir / "engage-queue.sqlite")

    def served_public_url(self, host: str, port: int) -> str:
        """Where public links point for a server on ``host:port``: ``CLM_PUBLIC_URL`` when it
        is set (environment or ``.env``), else that server's own address, so a survey link of
        ``clm serve --port 9000`` does not send people to the default port. A wildcard bind is
        reached on loopback from this machine."""
        if "public_url" in self.model_fields_set:
            return self.public_url
        wildcard = host in ("", "0.0.0.0")  # noqa: S104 (reading a bind address, not binding)
        reach = "127.0.0.1" if wildcard else "[::1]" if host == "::" else host
        if ":" in reach and not reach.startswith("["):
            reach = f"[{reach}]"
        return f"http://{reach}:{port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def signing_key(settings: Settings | None = None) -> str:
    """The secret that signs public links; refuses defaults outside local and test mode."""
    settings = settings or get_settings()
    given = settings.secret_key.get_secret_value() if settings.secret_key else None
    local = settings.env in ("local", "test")
    if given is not None and given.strip().lower() not in _DEFAULT_SECRETS and len(given) >= 16:
        return given
    if not local:
        raise ClmError(
            "CLM_SECRET_KEY must be set to a random value of at least 16 characters "
            "outside local mode",
            code="configuration_error",
        )
    return _local_key(settings.data_dir / "secret_key")


@lru_cache(maxsize=8)
def _local_key(path: Path) -> str:
    """The generated local key, read once a process (every public link is signed with it)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
