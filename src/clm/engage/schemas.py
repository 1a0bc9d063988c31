"""Engagement at the edge: channel providers, the guardrail policy, messages (pydantic)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from clm.store.storable import RowId

Channel = Literal["email", "sms", "webhook"]
Purpose = Literal["marketing", "transactional"]
# What a message is about. A closed list, because guardrails key on it: a free-text category
# let "cross-sell" or "up-sell" pass the upsell rule that "cross_sell" and "upsell" meet.
MessageCategory = Literal[
    "welcome", "onboarding", "reminder", "receipt", "account", "survey", "testimonial",
    "referral", "loyalty", "advocacy", "winback", "newsletter", "promotion", "upsell",
    "cross_sell", "other",
]  # fmt: skip
MESSAGE_CATEGORIES: frozenset[str] = frozenset(get_args(MessageCategory))
# Selling something: always marketing, never ``purpose: transactional`` (which skips the
# opt-in, the caps and quiet hours).
COMMERCIAL_CATEGORIES: frozenset[str] = frozenset(
    {"upsell", "cross_sell", "promotion", "newsletter", "winback"}
)


def commercial_is_marketing(category: str, purpose: str) -> None:
    """Refuse a selling category labelled transactional (a consent bypass)."""
    if purpose == "transactional" and category in COMMERCIAL_CATEGORIES:
        raise ValueError(
            f"category {category!r} is commercial: its purpose must be 'marketing', "
            "not 'transactional'"
        )


CHANNELS: tuple[Channel, ...] = ("email", "sms", "webhook")
MessageStatus = Literal["pending", "held", "sending", "sent", "blocked", "dead"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EmailProvider(_Strict):
    """An SMTP server; ``password`` is a secret: never logged nor returned."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65_535)] = 25
    sender: str = "CLM <noreply@localhost>"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    timeout: float = 10.0
    # Opens (a pixel) and clicks (signed redirects) in HTML emails, as events on the log.
    track_engagement: bool = True
    # SMTP connections a batch is spread over (each one waits for replies in turn).
    connections: Annotated[int, Field(ge=1, le=32)] = 4


class SmsProvider(_Strict):
    """A Twilio-compatible HTTP API: ``{base_url}/2010-04-01/Accounts/{sid}/Messages.json``."""

    base_url: str = "https://api.twilio.com"
    account_sid: str
    auth_token: SecretStr
    sender: str
    timeout: float = 10.0


class WebhookProvider(_Strict):
    """A URL receiving JSON, signed with HMAC-SHA256 over ``{timestamp}.{body}``."""

    url: str
    secret: SecretStr
    timeout: float = 10.0


class FrequencyCap(_Strict):
    channel: Channel
    max_messages: Annotated[int, Field(ge=0, le=1_000_000)]
    window_hours: Annotated[float, Field(gt=0)]


# A wall-clock time in the customer's own zone, so it has no UTC offset: the OpenAPI says so
# (JSON Schema's ``format: time`` requires an offset, and the policy answered against it).
LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$",
            "description": "a local time of day, HH:MM[:SS]",
        }
    ),
]


class QuietHours(_Strict):
    """No marketing between ``start`` and ``end`` in the customer's own time zone."""

    start: LocalTime = time(21, 0)
    end: LocalTime = time(8, 0)
    default_timezone: Annotated[str, Field(max_length=64)] = "UTC"

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # A misspelt zone would silently fall back to UTC at send time: refuse it here.
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Paris)"
            ) from exc
        return value


def _upsells() -> list[MessageCategory]:
    return ["upsell", "cross_sell"]


class Policy(_Strict):
    """The guardrails, enforced on every send; the defaults are the safe ones."""

    marketing_requires_opt_in: bool = True
    caps: list[FrequencyCap] = Field(
        default_factory=lambda: [
            FrequencyCap(channel="email", max_messages=3, window_hours=24 * 7),
            FrequencyCap(channel="sms", max_messages=1, window_hours=24),
        ]
    )
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    # No upsell or cross-sell unless health is happy, and has been for ``stable_days``.
    upsell_requires_happy: bool = True
    upsell_categories: list[MessageCategory] = Field(default_factory=_upsells)
    stable_days: Annotated[int, Field(ge=0, le=36_500)] = 14
    max_attempts: Annotated[int, Field(ge=1, le=1_000)] = 5
    backoff_seconds: Annotated[float, Field(ge=0)] = 30.0


class Content(_Strict):
    """What to say: Jinja2 templates per channel (``text`` is the plain-text part / SMS body)."""

    subject: str = ""
    text: str = ""
    html: str | None = None
    body: dict[str, Any] | None = None  # webhooks: a JSON document (string values templated)


class SendRequest(_Strict):
    """A decision to write to one customer: guardrails decide whether, and when."""

    customer_id: RowId
    channel: Channel
    category: MessageCategory = "other"
    purpose: Purpose = "marketing"
    content: Content
    idempotency_key: Annotated[str, Field(min_length=1, max_length=160)]
    source: Annotated[str, Field(max_length=160)] = ""
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("category", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _commercial(self) -> SendRequest:
        commercial_is_marketing(self.category, self.purpose)
        return self


class Decision(BaseModel):
    """The guardrails' verdict on one send, with the reason when it is not a plain yes."""

    status: Literal["pending", "held", "blocked"]
    reason: str | None = None
    send_at: datetime | None = None


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int | None
    channel: str
    category: str
    purpose: str
    status: str
    reason: str | None
    source: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryReport(BaseModel):
    """What one pass of the worker did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    blocked: int = 0
