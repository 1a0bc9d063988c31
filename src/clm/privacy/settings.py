"""A workspace's privacy settings: event retention and the browser origins allowed to send.

Kept in ``workspaces.settings["privacy"]``. Defaults are the strict ones: no retention limit
(nothing is purged until a policy says so) and no browser origin (CORS answers no one).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from clm.errors import NotFound
from clm.store.models import Workspace


def _origin(value: str) -> str:
    origin = value.strip().rstrip("/").lower()
    scheme, sep, rest = origin.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise ValueError(f"{value!r} is not an origin: write scheme://host[:port], no path")
    return origin


Origin = Annotated[str, Field(max_length=255), AfterValidator(_origin)]


class PrivacySettings(BaseModel):
    """``retention_months``: events older than this many months are purged on schedule
    (None: kept forever). ``cors_origins``: exact origins (``https://shop.example``) whose
    pages may post events to ``/v1`` with the write key."""

    model_config = ConfigDict(extra="forbid")

    retention_months: Annotated[int, Field(ge=1, le=1200)] | None = None
    cors_origins: Annotated[list[Origin], Field(max_length=100)] = Field(default_factory=list)

    @field_validator("cors_origins")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        return sorted(set(values))


def get_privacy_settings(session: Session, workspace_id: int) -> PrivacySettings:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"No workspace {workspace_id}")
    return PrivacySettings.model_validate((workspace.settings or {}).get("privacy", {}))


def set_privacy_settings(session: Session, workspace_id: int, value: PrivacySettings) -> None:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"No workspace {workspace_id}")
    workspace.settings = {**(workspace.settings or {}), "privacy": value.model_dump(mode="json")}
    flag_modified(workspace, "settings")
