"""Playbook catalog: validate, apply (versioned), pause and resume, report, journey history.

Applying a changed definition stores a new version; journeys already under way keep the
version they began on unless ``migrate=True`` moves them (by step id) to the new one.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError as PydanticError
from sqlalchemy import func, select, update

from clm.engage.delivery.templates import check
from clm.engage.playbooks.outcomes import observe, watched_goal
from clm.engage.playbooks.schemas import (
    ArmResult,
    JourneyPublic,
    JourneyStepPublic,
    PlaybookDefinition,
    PlaybookPublic,
    PlaybookReport,
)
from clm.errors import FieldError, NotFound, ValidationError
from clm.lifecycle.saved_segments import segment_named, segment_names
from clm.store.engine import Database
from clm.store.models import (
    EngageJourney,
    EngageJourneyLog,
    EngagePlaybook,
)

SHIPPED = ("welcome", "winback", "advocacy_ask", "renewal_reminder")


def parse_playbook(source: str | dict[str, Any]) -> PlaybookDefinition:
    """A definition from YAML/JSON text or a dict; every problem is reported with its path."""
    data = yaml.safe_load(source) if isinstance(source, str) else source
    try:
        definition = PlaybookDefinition.model_validate(data)
    except PydanticError as exc:
        raise ValidationError(
            "Invalid playbook",
            [FieldError(tuple(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)],
        ) from exc
    for i, step in enumerate(definition.steps):
        if step.content is not None:
            check(step.content, ("steps", i, "content"))
    return definition


def check_segment(db: Database, workspace_id: int, definition: PlaybookDefinition) -> None:
    """A trigger naming a saved segment names one that exists (a field error if not)."""
    name = definition.trigger.segment
    if name is None or segment_named(db, workspace_id, name) is not None:
        return
    saved = segment_names(db, workspace_id)
    known = f"; saved segments: {', '.join(saved)}" if saved else "; no segment is saved yet"
    message = f"no saved segment named {name!r}{known}"
    raise ValidationError("Invalid playbook", [FieldError(("trigger", "segment"), message)])


def shipped_playbook(name: str) -> PlaybookDefinition:
    text = resources.files("clm.engage").joinpath(f"data/playbooks/{name}.yaml").read_text()
    return parse_playbook(text)


def _public(row: EngagePlaybook) -> PlaybookPublic:
    return PlaybookPublic(
        id=row.id,
        name=row.name,
        version=row.version,
        status=row.status,
        created_at=row.created_at,
        definition=dict(row.definition),
    )


def apply_playbook(
    db: Database,
    workspace_id: int,
    definition: PlaybookDefinition,
    *,
    migrate: bool = False,
    source: str | None = None,
) -> PlaybookPublic:
    """Store ``definition`` as the active version (unchanged definitions are not re-stored).

    ``source`` is the text ``definition`` was parsed from, kept with its version so an editor
    reopens what was saved, comments and all. The stored text always parses to its version's
    definition: a changed definition saved without text (JSON) is a new version without text
    (its YAML is rebuilt); the same definition in a text that differs only in comments or
    layout replaces the current version's text without a new version (journeys are
    untouched); the same definition without text keeps the current text.
    """
    check_segment(db, workspace_id, definition)
    data = definition.model_dump(mode="json", by_alias=True)
    with db.transaction() as session:
        latest = session.scalars(
            select(EngagePlaybook)
            .where(
                EngagePlaybook.workspace_id == workspace_id, EngagePlaybook.name == definition.name
            )
            .order_by(EngagePlaybook.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.definition == data:
            if source is not None:
                latest.source = source
            return _public(latest)
        row = EngagePlaybook(
            workspace_id=workspace_id,
            name=definition.name,
            version=(latest.version + 1) if latest else 1,
            definition=data,
            source=source,
            status=latest.status if latest and latest.status == "paused" else "active",
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        if latest is not None:
            session.execute(
                update(EngagePlaybook)
                .where(
                    EngagePlaybook.workspace_id == workspace_id,
                    EngagePlaybook.name == definition.name,
                    EngagePlaybook.id != row.id,
                )
                .values(status="retired")
            )
            if migrate:
                _migrate(session, workspace_id, definition, row.id)
        return _public(row)


def _migrate(session: Any, workspace_id: int, new: PlaybookDefinition, new_id: int) -> None:
    journeys = session.scalars(
        select(EngageJourney).where(
            EngageJourney.workspace_id == workspace_id,
            EngageJourney.playbook_name == new.name,
            EngageJourney.state.in_(("active", "waiting")),
            EngageJourney.playbook_id != new_id,
        )
    )
    versions: dict[int, PlaybookDefinition] = {}
    ids = {s.id for s in new.steps}
    for journey in journeys:
        old = versions.get(journey.playbook_id)
        if old is None:
            source = session.get(EngagePlaybook, journey.playbook_id)
            old = versions[journey.playbook_id] = PlaybookDefinition.model_validate(
                source.definition
            )
        step_id = old.steps[journey.step].id if journey.step < len(old.steps) else "exit"
        journey.playbook_id = new_id
        journey.step = new.index(step_id) if step_id in ids else len(new.steps)
        session.add(
            EngageJourneyLog(
                workspace_id=workspace_id,
                journey_id=journey.id,
                step=step_id,
                action="migrated",
                detail=f"moved to version id {new_id}",
                at=datetime.now(UTC),
            )
        )


def list_playbooks(db: Database, workspace_id: int) -> list[PlaybookPublic]:
    """The current version of each playbook."""
    with db.session() as session:
        rows = session.scalars(
            select(EngagePlaybook)
            .where(EngagePlaybook.workspace_id == workspace_id, EngagePlaybook.status != "retired")
            .order_by(EngagePlaybook.name)
        )
        return [_public(r) for r in rows]


def playbook_version(
    db: Database, workspace_id: int, name: str, version: int | None = None
) -> tuple[PlaybookPublic, str | None]:
    """A playbook's current version (or the one numbered ``version``, retired or not) and the
    text it was saved as: None for a version saved as JSON or stored before texts were kept."""
    query = select(EngagePlaybook).where(
        EngagePlaybook.workspace_id == workspace_id, EngagePlaybook.name == name
    )
    if version is None:
        query = query.where(EngagePlaybook.status != "retired")
    else:
        query = query.where(EngagePlaybook.version == version)
    with db.session() as session:
        row = session.scalars(query.order_by(EngagePlaybook.version.desc())).first()
        if row is None:
            at = "" if version is None else f" version {version}"
            raise NotFound(f"No playbook {name!r}{at}")
        return _public(row), row.source


def set_paused(db: Database, workspace_id: int, name: str, paused: bool) -> PlaybookPublic:
    with db.transaction() as session:
        row = session.scalars(
            select(EngagePlaybook).where(
                EngagePlaybook.workspace_id == workspace_id,
                EngagePlaybook.name == name,
                EngagePlaybook.status != "retired",
            )
        ).first()
        if row is None:
            raise NotFound(f"No playbook {name!r}")
        row.status = "paused" if paused else "active"
        return _public(row)


def _rate(enrolled: int, reached: int) -> ArmResult:
    return ArmResult(
        enrolled=enrolled,
        reached_goal=reached,
        rate=round(reached / enrolled, 4) if enrolled else 0.0,
    )


def playbook_report(db: Database, workspace_id: int, name: str) -> PlaybookReport:
    """Goal conversion of treatment against the holdout, with the uplift's 95% Wald CI.

    A journey reached the goal when its customer has a goal event (or entered the goal stage)
    within ``within_days`` of enrolment. Each journey's outcome is stored on its row and kept
    by the engagement tick (``outcomes``); the report brings its playbook's up to date (the
    full computation once after a goal change, then only what the log added) and counts them
    in one read of ``ix_engage_journeys_goal``, instead of probing the log per journey (0.5 s
    CPU at 100,000 journeys).
    """
    with db.session() as session:
        current = session.scalars(
            select(EngagePlaybook)
            .where(EngagePlaybook.workspace_id == workspace_id, EngagePlaybook.name == name)
            .order_by(EngagePlaybook.version.desc())
        ).first()
        if current is None:
            raise NotFound(f"No playbook {name!r}")
        goal = PlaybookDefinition.model_validate(current.definition).goal
    version = (
        observe(db, workspace_id, name, watched_goal(db, workspace_id, goal)).version
        if goal
        else None
    )
    with db.session() as session:
        groups = session.execute(
            select(
                EngageJourney.goal_version,
                EngageJourney.arm,
                EngageJourney.variant,
                EngageJourney.state,
                func.count(),
                func.count(EngageJourney.goal_ts),
            )
            .where(EngageJourney.workspace_id == workspace_id, EngageJourney.playbook_name == name)
            # The index's own order: grouped as it is read, no sort.
            .group_by(
                EngageJourney.goal_version,
                EngageJourney.arm,
                EngageJourney.variant,
                EngageJourney.state,
            )
        ).all()
    arms: dict[str, list[int]] = {"treatment": [0, 0], "control": [0, 0]}
    variants: dict[str, list[int]] = {}
    states: dict[str, int] = {}
    for observed, arm, variant, state, enrolled, goals in groups:
        # An outcome counts under the current goal only (one enrolled since the observation
        # above has none yet: not reached until the next one).
        reached = int(goals) if version is not None and observed == version else 0
        arms[arm][0] += int(enrolled)
        arms[arm][1] += reached
        if variant:
            variants.setdefault(variant, [0, 0])
            variants[variant][0] += int(enrolled)
            variants[variant][1] += reached
        states[state] = states.get(state, 0) + int(enrolled)
    t, c = _rate(*arms["treatment"]), _rate(*arms["control"])
    uplift = low = high = None
    if goal and t.enrolled and c.enrolled:
        uplift = t.rate - c.rate
        se = math.sqrt(t.rate * (1 - t.rate) / t.enrolled + c.rate * (1 - c.rate) / c.enrolled)
        low, high = round(uplift - 1.96 * se, 4), round(uplift + 1.96 * se, 4)
        uplift = round(uplift, 4)
    label = (
        None
        if goal is None
        else (f"stage {goal.stage}" if goal.stage else f"event {goal.event}")
        + f" within {goal.within_days}d"
    )
    return PlaybookReport(
        name=name,
        goal=label,
        treatment=t,
        control=c,
        uplift=uplift,
        ci_low=low,
        ci_high=high,
        variants={k: _rate(*v) for k, v in variants.items()},
        states=states,
    )


def journey_history(db: Database, workspace_id: int, customer_id: int) -> list[JourneyPublic]:
    """Every journey of a customer: which step, when, and why."""
    with db.session() as session:
        journeys = session.scalars(
            select(EngageJourney)
            .where(
                EngageJourney.workspace_id == workspace_id, EngageJourney.customer_id == customer_id
            )
            .order_by(EngageJourney.id)
        ).all()
        out = []
        for j in journeys:
            book = session.get(EngagePlaybook, j.playbook_id)
            definition = PlaybookDefinition.model_validate(book.definition) if book else None
            log = session.scalars(
                select(EngageJourneyLog)
                .where(EngageJourneyLog.journey_id == j.id)
                .order_by(EngageJourneyLog.id)
            )
            step = (
                definition.steps[j.step].id
                if definition and j.step < len(definition.steps)
                else None
            )
            out.append(
                JourneyPublic(
                    id=j.id,
                    playbook=j.playbook_name,
                    version=book.version if book else 0,
                    arm=j.arm,
                    variant=j.variant,
                    state=j.state,
                    current_step=step,
                    enrolled_at=j.enrolled_at,
                    wake_at=j.wake_at,
                    history=[
                        JourneyStepPublic(step=r.step, action=r.action, detail=r.detail, at=r.at)
                        for r in log
                    ],
                )
            )
        return out


def journey_counts(db: Database, workspace_id: int) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(EngageJourney.state, func.count())
            .where(EngageJourney.workspace_id == workspace_id)
            .group_by(EngageJourney.state)
        )
        return {state: int(n) for state, n in rows}
