"""The engagement fixtures (real SMTP sink, test secrets) for the live loop's tests."""

from tests.engage.conftest import engage_env, smtp_sink

__all__ = ["engage_env", "smtp_sink"]
