"""Whole-flow fixtures: the real SMTP sink of the engagement tests."""

from tests.engage.conftest import smtp_sink

__all__ = ["smtp_sink"]
