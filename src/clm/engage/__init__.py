"""Engagement: acting on where a customer stands — messages, surveys, playbooks, referrals.

Everything here is written back to the event log as ordinary Segment ``track`` events, with
deterministic message ids (``clm-engage-…``) so retries never double them:

======================  ===================================================================
event                   properties
======================  ===================================================================
``Email Sent``          message_id, channel, category (also ``SMS Sent``, ``Webhook Delivered``)
``Message Blocked``     channel, category, purpose, reason (consent, suppression, cap, upsell)
``Unsubscribed``        channel, reason
``Email Opened``        message_id, category, source (the open pixel; once per message)
``Email Clicked``       message_id, category, source, url (signed redirect; once per link)
======================  ===================================================================

Sends go through one place (``send``/``decide_in``): the guardrails decide, the outbox
records, the worker delivers at least once with an idempotency key. Everything driven by the
clock (journeys, referral rewards after the refund window, points earned and expired) runs in
``schedule.run_due``, which the worker calls every minute.
"""

from clm.engage.delivery.channels import sign_webhook, verify_webhook
from clm.engage.delivery.deliver import deliver_due
from clm.engage.delivery.outbox import Decided, decide_in, send
from clm.engage.delivery.worker import Queue, make_queue, run_worker
from clm.engage.schemas import (
    Content,
    DeliveryReport,
    EmailProvider,
    Policy,
    SendRequest,
    SmsProvider,
    WebhookProvider,
)

__all__ = [
    "Content",
    "Decided",
    "DeliveryReport",
    "EmailProvider",
    "Policy",
    "Queue",
    "SendRequest",
    "SmsProvider",
    "WebhookProvider",
    "decide_in",
    "deliver_due",
    "make_queue",
    "run_worker",
    "send",
    "sign_webhook",
    "verify_webhook",
]
