"""The audit log: every change, who made it, and the state before and after.

``record`` appends one row inside the caller's transaction, so the change and its record
commit together or not at all (``clm.store.audit.append`` is the same without a principal, for
packages below accounts). Nothing updates or deletes a record (triggers refuse it too).
Secrets never enter the log: pass redacted dumps (``SecretStr`` fields dump as ``*****``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.accounts.roles import Principal
from clm.store.audit import append
from clm.store.engine import Database
from clm.store.models import AuditRecord

MAX_PAGE = 500


class AuditPublic(BaseModel):
    """One record as the API and CLI show it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    workspace_id: int | None
    at: datetime
    actor: str
    actor_user_id: int | None
    actor_key_id: int | None
    action: str
    target: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Actor:
    """Who to name in a record when there is no ``Principal`` (a worker, a migration)."""

    actor: str
    user_id: int | None = None
    key_id: int | None = None


def record(
    session: Session,
    who: Principal | Actor,
    action: str,
    target: str = "",
    *,
    before: Any = None,
    after: Any = None,
    workspace_id: int | None = None,
) -> None:
    """Append a record of ``action`` on ``target`` in the caller's transaction.

    ``action`` is ``<thing>.<verb>`` (``stage_model.update``, ``key.revoke``,
    ``customer.erase``); ``before``/``after`` are JSON-ready values (``None`` for create or
    delete). ``workspace_id`` defaults to the principal's.
    """
    if workspace_id is None and isinstance(who, Principal):
        workspace_id = who.workspace_id
    append(
        session,
        workspace_id=workspace_id,
        actor=who.actor,
        action=action,
        target=target,
        before=before,
        after=after,
        actor_user_id=who.user_id,
        actor_key_id=who.key_id,
    )


def record_after(
    db: Database,
    who: Principal | Actor,
    action: str,
    target: str = "",
    *,
    before: Any = None,
    after: Any = None,
) -> None:
    """Record a change a service has already committed in a transaction of its own.

    Prefer ``record`` inside the change's transaction; this is for services that own their
    transaction and cannot take the record (it can be lost if the process dies in between).
    """
    with db.transaction() as session:
        record(session, who, action, target, before=before, after=after)


def list_records(
    session: Session,
    workspace_id: int | None,
    *,
    before_id: int | None = None,
    limit: int = 100,
    action: str | None = None,
) -> list[AuditPublic]:
    """The workspace's records, newest first; page with ``before_id`` = the last id seen."""
    query = select(AuditRecord).where(AuditRecord.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    if action:
        query = query.where(AuditRecord.action.startswith(action, autoescape=True))
    query = query.order_by(AuditRecord.id.desc()).limit(min(limit, MAX_PAGE))
    return [AuditPublic.model_validate(row) for row in session.scalars(query)]
