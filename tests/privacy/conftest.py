"""Privacy fixtures: the engagement environment (a known server secret, a private data
directory, no queue notifications) and its loopback receivers."""

from __future__ import annotations

from tests.engage.conftest import engage_env, http_receiver, smtp_sink

__all__ = ["engage_env", "http_receiver", "smtp_sink"]
