"""The live loop's knobs (``CLM_LIVE_*``): how soon, how often, and when to refit.

Every default keeps a workspace current without cron; each can be changed in the environment
or ``.env`` like every other setting.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LiveSettings(BaseSettings):
    """What ``clm worker`` and the ingestion nudge read from ``CLM_LIVE_*``."""

    model_config = SettingsConfigDict(env_prefix="CLM_LIVE_", env_file=".env", extra="ignore")

    # Off: the worker only delivers the outbox and runs the engagement tick (the old worker).
    enabled: bool = True
    # Whether this process nudges the worker after storing events: ``clm serve`` turns it on.
    nudge: bool = False
    # The ingestion path nudges the worker at most this often per workspace and process, so a
    # burst of requests costs one queue write, not one per request.
    nudge_seconds: float = Field(default=0.2, ge=0.0, le=60.0)
    # How long the embedded (SQLite) queue may sleep between polls when idle: the worst-case
    # pick-up delay of a nudge. Redis blocks on the queue and needs no polling.
    poll_seconds: float = Field(default=0.5, ge=0.05, le=10.0)
    # A pass schedules the next one for the next due moment (a lapse, a deadline, a journey's
    # wait, a health change) when it falls within this horizon; the minute sweep covers the rest.
    lookahead_seconds: float = Field(default=3600.0, ge=1.0, le=86_400.0)
    # Predictions are refitted every day at this hour (UTC) ...
    predict_hour: int = Field(default=3, ge=0, le=23)
    # ... and after a large import: this many new customer events since the last refit.
    predict_after_events: int = Field(default=10_000, ge=1)


@lru_cache(maxsize=1)
def get_live_settings() -> LiveSettings:
    return LiveSettings()
