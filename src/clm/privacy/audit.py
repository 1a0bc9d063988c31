"""Audit records of privacy actions (exports, erasures, consent changes).

Placeholder until ``clm.accounts`` exposes its audit-append function: the record goes to the
``clm.privacy.audit`` logger, with ids only, never personal data.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

log = logging.getLogger("clm.privacy.audit")


def record(
    session: Session,
    workspace_id: int,
    *,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append one audit record inside the caller's transaction."""
    log.info(
        "audit %s %s by %s",
        action,
        target,
        actor,
        extra={"workspace_id": workspace_id, "before": before, "after": after},
    )
