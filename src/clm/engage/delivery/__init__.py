"""Delivery: guardrails, the outbox, channels (email, SMS, webhook), links, worker.

The names below are the package's public surface (what the API, CLI and worker use); each is
loaded from its module on first use, so that importing one module of a sub-package never runs
the others (the sub-packages depend on each other's modules, not on each other's surfaces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clm.engage._lazy import lazy_getattr

if TYPE_CHECKING:
    from clm.engage.delivery.channels import DeliveryError, SmtpSession
    from clm.engage.delivery.unsubscribe import UNSUBSCRIBE_MAX_AGE
    from clm.engage.delivery.worker import Queue, drain_once, make_queue

_WHERE = {
    "DeliveryError": "channels",
    "Queue": "worker",
    "SmtpSession": "channels",
    "UNSUBSCRIBE_MAX_AGE": "unsubscribe",
    "drain_once": "worker",
    "make_queue": "worker",
}

__all__ = [
    "UNSUBSCRIBE_MAX_AGE",
    "DeliveryError",
    "Queue",
    "SmtpSession",
    "drain_once",
    "make_queue",
]


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
