"""Engagement settings: the signing secret for public links, the public URL, the task queue.

``CLM_SECRET_KEY`` signs every public link (survey answers, unsubscribes, referral landings).
Outside local and test mode (``CLM_ENV``) a missing or well-known default secret is refused; in
local mode one is generated once and kept under the data directory, readable by its owner only.
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


class EngageSettings(BaseSettings):
    """What engagement reads from ``CLM_*``: nothing is needed in local mode."""

    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

    env: Literal["local", "test", "production"] = "local"
    secret_key: SecretStr | None = None
    data_dir: Path = Field(default_factory=_default_data_dir)
    public_url: str = "http://127.0.0.1:8000"
    # redis://host:port/db for Redis, else a SQLite file for the embedded queue.
    queue_url: str | None = None
    engage_lease_seconds: int = 60
    engage_batch_size: int = 200
    # Enqueue a delivery task after each commit that creates messages.
    engage_notify: bool = True
    # Outbound safety (webhook and SMS targets, see ``clm.engage.delivery.outbound``): server-wide
    # settings only an operator can change, never a tenant. Plain http is refused unless
    # allowed; loopback, link-local and private targets are refused unless their network is
    # listed here (comma-separated CIDRs, e.g. ``127.0.0.0/8,10.1.0.0/16``).
    outbound_allow_http: bool = False
    outbound_allowed_networks: str = ""

    @property
    def queue_target(self) -> str:
        return self.queue_url or str(self.data_dir / "engage-queue.sqlite")


@lru_cache(maxsize=1)
def get_engage_settings() -> EngageSettings:
    return EngageSettings()


def signing_key(settings: EngageSettings | None = None) -> str:
    """The secret that signs public links; refuses defaults outside local and test mode."""
    settings = settings or get_engage_settings()
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
