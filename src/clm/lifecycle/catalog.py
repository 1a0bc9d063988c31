"""Stored stage models and scorecards: every applied version is kept, exactly one is active.

A workspace has exactly one active stage model and one active scorecard: applying one makes it
active and deactivates whichever was active before, whatever its name (``DefinitionInfo.
replaced`` says which). One active model is what stages, counts, health, playbooks and the live
worker read without being told; a model chosen by name (``--model``) is still computed and read
with its own history, which is kept per stored version. (Several active models at once, the old
behaviour, silently kept the first one applied in charge.)

A workspace without a stage model gets the shipped ``classic`` model on first use, and the
shipped ``default`` scorecard likewise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from clm.errors import NotFound
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.loader import (
    default_scorecard_text,
    load_scorecard,
    load_stage_model,
    shipped_model_text,
)
from clm.lifecycle.schemas import DefinitionInfo
from clm.store.engine import Database
from clm.store.models import LifecycleDefinition

Kind = Literal["stages", "health"]


@lru_cache(maxsize=64)
def _compile(kind: Kind, source: str) -> Any:
    """The checked definition of a YAML text: cached by the text itself (compiling costs
    ~50 ms and every read of a customer asked for it several times); a bad text raises each
    time, as exceptions are not cached."""
    return load_stage_model(source) if kind == "stages" else load_scorecard(source)


def save_definition(db: Database, workspace_id: int, kind: Kind, source: str) -> DefinitionInfo:
    """Validate ``source`` and store it as the next version of its name, made active."""
    compiled = _compile(kind, source)
    with db.transaction() as session:
        latest = session.scalar(
            select(func.max(LifecycleDefinition.version)).where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.kind == kind,
                LifecycleDefinition.name == compiled.name,
            )
        )
        before = session.scalars(
            select(LifecycleDefinition)
            .where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.kind == kind,
                LifecycleDefinition.active.is_(True),
            )
            .order_by(LifecycleDefinition.id.desc())
        ).first()
        replaced = DefinitionInfo.model_validate(before) if before is not None else None
        session.execute(
            update(LifecycleDefinition)
            .where(
                LifecycleDefinition.workspace_id == workspace_id,
                LifecycleDefinition.kind == kind,
            )
            .values(active=False)
        )
        row = LifecycleDefinition(
            workspace_id=workspace_id,
            kind=kind,
            name=compiled.name,
            version=(latest or 0) + 1,
            source=source,
            active=True,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        info = DefinitionInfo.model_validate(row)
    if replaced is not None:
        replaced.active = False
    return info.model_copy(update={"replaced": replaced})


def apply_stage_model(db: Database, workspace_id: int, source: str) -> DefinitionInfo:
    """Store a new version of a stage model (YAML) and make it the workspace's one active
    model (``replaced``: the one it deactivates); recompute with ``run_lifecycle`` after."""
    return save_definition(db, workspace_id, "stages", source)


def list_definitions(
    db: Database, workspace_id: int, kind: Kind = "stages"
) -> list[DefinitionInfo]:
    with db.session() as session:
        rows = session.scalars(
            select(LifecycleDefinition)
            .where(
                LifecycleDefinition.workspace_id == workspace_id, LifecycleDefinition.kind == kind
            )
            .order_by(LifecycleDefinition.name, LifecycleDefinition.version)
        )
        return [DefinitionInfo.model_validate(r) for r in rows]


def get_definition(
    db: Database,
    workspace_id: int,
    kind: Kind = "stages",
    name: str | None = None,
    version: int | None = None,
) -> tuple[DefinitionInfo, Any, str]:
    """(info, compiled, source) of the active definition, or of the one named (its latest
    version, or ``version``); installs the default when the workspace has none."""
    query = select(LifecycleDefinition).where(
        LifecycleDefinition.workspace_id == workspace_id, LifecycleDefinition.kind == kind
    )
    if name is not None:
        query = query.where(LifecycleDefinition.name == name)
    if version is not None:
        query = query.where(LifecycleDefinition.version == version)
    elif name is None:
        query = query.where(LifecycleDefinition.active.is_(True))
    with db.session() as session:
        # The newest first: with a name, its latest version; without, the last one made active
        # (a workspace from before "one active model" may still have several marked active).
        row = session.scalars(query.order_by(LifecycleDefinition.id.desc())).first()
        info = DefinitionInfo.model_validate(row) if row else None
        source = row.source if row else ""
    if info is None:
        if name is not None or version is not None:
            raise NotFound(
                f"No {kind} definition {name or ''} version {version or 'latest'}".replace(
                    "  ", " "
                )
            )
        default = shipped_model_text("classic") if kind == "stages" else default_scorecard_text()
        try:
            info = save_definition(db, workspace_id, kind, default)
        except IntegrityError:
            # Another request of a new workspace installed the default at the same moment.
            return get_definition(db, workspace_id, kind)
        source = default
    return info, _compile(kind, source), source


def get_stage_model(
    db: Database, workspace_id: int, name: str | None = None, version: int | None = None
) -> tuple[DefinitionInfo, CompiledModel]:
    info, compiled, _ = get_definition(db, workspace_id, "stages", name, version)
    return info, compiled
