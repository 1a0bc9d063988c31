"""The one way to append to the audit log, usable from any package (``clm.accounts`` wraps it
with principals; ``clm.privacy`` and the domain services may call it directly, inside their
own transaction, so a change and its record commit together)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from clm.store.models import AuditRecord


def append(
    session: Session,
    *,
    workspace_id: int | None,
    actor: str,
    action: str,
    target: str = "",
    before: Any = None,
    after: Any = None,
    actor_user_id: int | None = None,
    actor_key_id: int | None = None,
) -> None:
    """Add one record to the caller's transaction (flushed, not committed)."""
    session.add(
        AuditRecord(
            workspace_id=workspace_id,
            at=datetime.now(UTC),
            actor=actor[:320],
            actor_user_id=actor_user_id,
            actor_key_id=actor_key_id,
            action=action[:64],
            target=target[:255],
            before=before,
            after=after,
        )
    )
    session.flush()
