"""Sign-in settings, read from ``CLM_*``: sensible defaults, nothing required."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class AccountSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

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
    # Where reset links point: the dashboard's address as people reach it.
    public_url: str = "http://127.0.0.1:8000"


@lru_cache(maxsize=1)
def get_account_settings() -> AccountSettings:
    return AccountSettings()
