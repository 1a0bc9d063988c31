"""Segment-spec messages, validated at the edge.

The six Segment calls (identify, track, page, screen, group, alias) as pydantic models. Unknown
fields are kept (Segment clients send ``integrations``, ``library`` and more) but never trusted.
User ids may arrive as numbers from some clients; they are stored as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)


def _id_to_str(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a string or a number, not a boolean")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


Identifier = Annotated[Annotated[str, Field(max_length=255)] | None, BeforeValidator(_id_to_str)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, str_max_length=32_768)

    message_id: Annotated[str | None, Field(alias="messageId", max_length=255)] = None
    user_id: Annotated[Identifier, Field(alias="userId")] = None
    anonymous_id: Annotated[Identifier, Field(alias="anonymousId")] = None
    timestamp: datetime | None = None
    original_timestamp: Annotated[datetime | None, Field(alias="originalTimestamp")] = None
    sent_at: Annotated[datetime | None, Field(alias="sentAt")] = None
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp", "original_timestamp", "sent_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("context", "integrations", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _someone(self) -> _Message:
        if self.user_id is None and self.anonymous_id is None and self.type != "alias":
            raise ValueError("either userId or anonymousId is required")
        return self

    type: str


class Identify(_Message):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


class Track(_Message):
    type: Literal["track"] = "track"
    event: Annotated[str, Field(min_length=1, max_length=255)]
    properties: dict[str, Any] = Field(default_factory=dict)


class Page(_Message):
    type: Literal["page"] = "page"
    name: Annotated[str | None, Field(max_length=255)] = None
    category: Annotated[str | None, Field(max_length=255)] = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Screen(_Message):
    type: Literal["screen"] = "screen"
    name: Annotated[str | None, Field(max_length=255)] = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Group(_Message):
    type: Literal["group"] = "group"
    group_id: Annotated[Identifier, Field(alias="groupId")]
    traits: dict[str, Any] = Field(default_factory=dict)

    @field_validator("group_id")
    @classmethod
    def _required(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("groupId is required")
        return value


class Alias(_Message):
    type: Literal["alias"] = "alias"
    previous_id: Annotated[Identifier, Field(alias="previousId")]

    @model_validator(mode="after")
    def _both_ids(self) -> Alias:
        if self.previous_id is None:
            raise ValueError("previousId is required")
        if self.user_id is None:
            raise ValueError("userId is required")
        return self


Message = Annotated[Identify | Track | Page | Screen | Group | Alias, Field(discriminator="type")]
MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
message_adapter: TypeAdapter[Identify | Track | Page | Screen | Group | Alias] = TypeAdapter(
    Message
)

AnyMessage = Identify | Track | Page | Screen | Group | Alias


class Batch(BaseModel):
    """The envelope of ``/v1/batch``; each message is validated on its own.

    ``batch`` is a list of anything here: checking (and copying) each message as a dict cost
    a microsecond an event, and ``parse_messages`` validates them anyway. A batch with a
    message that is no JSON object is refused whole, as before, by ``StrictBatch``'s errors.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    batch: list[Any]
    sent_at: Annotated[datetime | None, Field(alias="sentAt")] = None
    context: dict[str, Any] = Field(default_factory=dict)
    write_key: Annotated[str | None, Field(alias="writeKey")] = None


class StrictBatch(Batch):
    """``Batch`` whose messages must be JSON objects: validated only when one is not, for the
    field-level errors of that refusal."""

    batch: list[dict[str, Any]]


class Rejected(BaseModel):
    """One message that was not stored, and why, field by field."""

    index: int
    message_id: str | None = Field(default=None, serialization_alias="messageId")
    errors: list[dict[str, Any]]


class IngestResult(BaseModel):
    """What happened to a batch: stored, already there, or rejected with reasons."""

    success: bool = True
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = Field(default_factory=list)
