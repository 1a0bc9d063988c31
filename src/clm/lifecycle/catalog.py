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
from sqlalchemy.orm import Session

from clm.errors import NotFound
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.loader import (
    default_scorecard_text,
    in_current_words,
    load_scorecard,
    load_stage_model,
    shipped_model_text,
)
from clm.lifecycle.schemas import DefinitionInfo
from clm.store.engine import Database
from clm.store.locks import one_at_a_time
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
        info, replaced = _save_in(session, workspace_id, kind, compiled.name, source)
    if replaced is not None:
        replaced.active = False
    return info.model_copy(update={"replaced": replaced})


def _active_row(session: Session, workspace_id: int, kind: Kind) -> LifecycleDefinition | None:
    return session.scalars(
        select(LifecycleDefinition)
        .where(
            LifecycleDefinition.workspace_id == workspace_id,
            LifecycleDefinition.kind == kind,
            LifecycleDefinition.active.is_(True),
        )
        .order_by(LifecycleDefinition.id.desc())
    ).first()


def _save_in(
    session: Session, workspace_id: int, kind: Kind, name: str, source: str
) -> tuple[DefinitionInfo, DefinitionInfo | None]:
    """Store the next version of ``name``, made the one active: (it, the one it replaced)."""
    latest = session.scalar(
        select(func.max(LifecycleDefinition.version)).where(
            LifecycleDefinition.workspace_id == workspace_id,
            LifecycleDefinition.kind == kind,
            LifecycleDefinition.name == name,
        )
    )
    before = _active_row(session, workspace_id, kind)
    replaced = DefinitionInfo.model_validate(before) if before is not None else None
    session.execute(
        update(LifecycleDefinition)
        .where(LifecycleDefinition.workspace_id == workspace_id, LifecycleDefinition.kind == kind)
        .values(active=False)
    )
    row = LifecycleDefinition(
        workspace_id=workspace_id,
        kind=kind,
        name=name,
        version=(latest or 0) + 1,
        source=source,
        active=True,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()  # two storing one version at once: the unique (..., version) refuses one
    return DefinitionInfo.model_validate(row), replaced


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
        # An untouched former default scorecard reads in today's words (loader.in_current_words).
        source = (in_current_words(row.source) if kind == "health" else row.source) if row else ""
    if info is None:
        if name is not None or version is not None:
            raise NotFound(
                f"No {kind} definition {name or ''} version {version or 'latest'}".replace(
                    "  ", " "
                )
            )
        default = shipped_model_text("classic") if kind == "stages" else default_scorecard_text()
        try:
            installed = _install_default(db, workspace_id, kind, default)
        except IntegrityError:
            installed = None  # a model applied by hand at this moment took the version
        if installed is None:  # someone else's default (or model) is there now: read it
            return get_definition(db, workspace_id, kind)
        info, source = installed, default
    return info, _compile(kind, source), source


def _install_default(
    db: Database, workspace_id: int, kind: Kind, source: str
) -> DefinitionInfo | None:
    """Store the shipped default, made active, unless the workspace has an active definition of
    this kind by now (None).

    One installer at a time per workspace, across processes, looking again under the lock:
    several processes find a new workspace empty at once (two workers and the server on its
    first events), and one that stored its default after another's commit made a second
    version the active one, so stages were computed and announced under both."""
    compiled = _compile(kind, source)
    with one_at_a_time(db, "definitions", workspace_id), db.transaction() as session:
        if _active_row(session, workspace_id, kind) is not None:
            return None
        return _save_in(session, workspace_id, kind, compiled.name, source)[0]


def get_stage_model(
    db: Database, workspace_id: int, name: str | None = None, version: int | None = None
) -> tuple[DefinitionInfo, CompiledModel]:
    info, compiled, _ = get_definition(db, workspace_id, "stages", name, version)
    return info, compiled
