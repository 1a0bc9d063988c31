"""Settings: one object, read from the environment (``CLM_*``) and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'clm.sqlite'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
