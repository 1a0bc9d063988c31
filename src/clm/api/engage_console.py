"""The engagement console's reads and edits under ``/api/v1/engage``: playbooks as YAML (check
as you type, save a new version), journeys in flight, survey results and comments, the
referral program's funnel, and the task inbox's assign and complete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from clm.accounts.audit import record_after
from clm.api.deps import DatabaseDep, Marketer, Reader, Support, workspace_id
from clm.api.routing import ClmRoute
from clm.engage import repository as repo
from clm.engage.playbooks import PlaybookPublic
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.inflight import JourneyFilter, JourneyPage, journeys_in_flight
from clm.engage.playbooks.source import (
    draft_of,
    draft_yaml,
    parse_playbook_yaml,
    playbook_yaml,
)
from clm.engage.referrals.stats import ReferralStats, referral_stats
from clm.engage.surveys.results import (
    CommentPage,
    Granularity,
    SurveyResults,
    survey_comments,
    survey_results,
)
from clm.errors import ValidationError
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1/engage", tags=["engage"], route_class=ClmRoute)

PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]


class PlaybookSource(BaseModel):
    """A playbook as YAML text, as a person writes it."""

    yaml: Annotated[str, Field(max_length=200_000)]


class PlaybookProblem(BaseModel):
    loc: list[str | int]
    message: str  # starts with "line N:" where the YAML has a line for it


class PlaybookCheck(BaseModel):
    """A playbook checked without storing it: its problems, or its name and steps."""

    valid: bool
    errors: list[PlaybookProblem] = []
    name: str | None = None
    steps: int | None = None
    draft: dict[str, Any] | None = Field(
        None, description="the YAML as data, mistakes and all (a form editor shows it)"
    )


class PlaybookDraft(BaseModel):
    """A playbook as a form holds it (perhaps with mistakes), to be written as YAML."""

    draft: Annotated[dict[str, Any], Field(description="the playbook's fields, as in its YAML")]
    yaml: Annotated[
        str | None,
        Field(
            max_length=200_000,
            description="the YAML the form is editing: the draft is written into it, keeping "
            "its comments and layout (without it, or when it is not a mapping, written afresh)",
        ),
    ] = None


class PlaybookText(BaseModel):
    name: str
    version: int
    status: str
    yaml: str
    as_saved: bool = Field(
        description="the text as it was saved, comments and layout kept; false when the "
        "version was saved as JSON (or before texts were kept) and its YAML is rebuilt"
    )


@router.post("/playbooks/check")
def check_playbook(body: PlaybookSource, db: DatabaseDep, key: Marketer) -> PlaybookCheck:
    """Check playbook YAML as it is typed. A playbook with mistakes is an ordinary answer
    (``valid: false`` and the line-numbered problems ``POST /playbooks/source`` would give as a
    422), not an error status, so an editor's keystrokes log no failed requests."""
    draft = draft_of(body.yaml)
    try:
        definition = parse_playbook_yaml(body.yaml)
        pb.check_segment(db, workspace_id(key), definition)  # a saved segment it names exists
    except ValidationError as problem:
        errors = [PlaybookProblem(loc=list(e.loc), message=e.message) for e in problem.errors]
        return PlaybookCheck(
            valid=False,
            errors=errors or [PlaybookProblem(loc=[], message=problem.message)],
            draft=draft,
        )
    return PlaybookCheck(valid=True, name=definition.name, steps=len(definition.steps), draft=draft)


@router.post("/playbooks/yaml")
def write_playbook_yaml(body: PlaybookDraft, key: Marketer) -> PlaybookSource:
    """A form's playbook as YAML text, written into the text it came from so the comments and
    layout stay (not checked: ``/playbooks/check`` does that, with the line of each problem,
    so the form and the text editor share one set of checks)."""
    del key  # only who may edit playbooks may ask
    return PlaybookSource(yaml=draft_yaml(body.draft, body.yaml))


@router.post("/playbooks/source", status_code=201)
def save_playbook_source(
    body: PlaybookSource, db: DatabaseDep, key: Marketer, migrate: bool = False
) -> PlaybookPublic:
    """Create a playbook from YAML, or save a changed one as its next version (journeys under
    way keep their version unless ``migrate``); 422 with line-numbered problems."""
    definition = parse_playbook_yaml(body.yaml)
    old = {p.name: p for p in pb.list_playbooks(db, workspace_id(key))}.get(definition.name)
    old_text = pb.playbook_version(db, workspace_id(key), old.name)[1] if old else None
    saved = pb.apply_playbook(db, workspace_id(key), definition, migrate=migrate, source=body.yaml)
    target = f"playbook:{saved.name}"
    if old is None or old.version != saved.version:
        record_after(
            db, key, "playbook.save", target,
            before=old.definition if old else None, after=saved.definition,
        )  # fmt: skip
    elif old_text != body.yaml:
        # Comments or layout only: the same version with a new text, audited like any save
        # (who changed the playbook's text and when), the texts standing for the definitions.
        record_after(
            db, key, "playbook.save", target,
            before={"version": old.version, "source": old_text},
            after={"version": saved.version, "source": body.yaml},
        )  # fmt: skip
    return saved


@router.get("/playbooks/{name}/source")
def get_playbook_source(
    name: str,
    db: DatabaseDep,
    key: Reader,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> PlaybookText:
    """The current version of a playbook (or the one numbered ``version``) as YAML, for the
    editor: the text it was saved as, comments and layout kept, or for a version saved as JSON
    its definition written as YAML (defaults left out)."""
    found, text = pb.playbook_version(db, workspace_id(key), name, version)
    return PlaybookText(
        name=found.name,
        version=found.version,
        status=found.status,
        yaml=playbook_yaml(found.definition) if text is None else text,
        as_saved=text is not None,
    )


@router.get("/playbooks/{name}/journeys")
def list_playbook_journeys(
    name: str,
    db: DatabaseDep,
    key: Reader,
    state: JourneyFilter = "in_flight",
    page: PageNumber = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JourneyPage:
    """Who is at which step of a playbook, waiting until when, or failed with what error;
    ``state=in_flight`` (the default) is every journey not yet over."""
    return journeys_in_flight(
        db, workspace_id(key), name, state=state, page=page, per_page=per_page
    )


@router.get("/surveys/{survey_key}/results")
def get_survey_results(
    survey_key: str, db: DatabaseDep, key: Reader, granularity: Granularity = "month"
) -> SurveyResults:
    """A survey's NPS (% promoters 9-10 minus % detractors 0-6), CSAT (% answering 4-5) or CES
    (mean), the spread of scores, the response rate and the trend per period."""
    return survey_results(db, workspace_id(key), survey_key, granularity)


@router.get("/surveys/{survey_key}/comments")
def get_survey_comments(
    survey_key: str,
    db: DatabaseDep,
    key: Reader,
    tone: Literal["positive", "neutral", "negative"] | None = None,
    page: PageNumber = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 20,
) -> CommentPage:
    """A survey's comments, newest first, each with its VADER sentiment and tone: one per
    response, its latest (a comment added later replaces the one given with the score)."""
    return survey_comments(
        db, workspace_id(key), survey_key, tone_filter=tone, page=page, per_page=per_page
    )


@router.get("/referrals/stats")
def get_referral_stats(db: DatabaseDep, key: Reader) -> ReferralStats:
    """The referral funnel (codes, clicks, referred, converted, rewarded) and why referrals
    were rejected."""
    return referral_stats(db, workspace_id(key))


class TaskChange(BaseModel):
    """Assign a task (``owner``; "" unassigns) and/or complete or reopen it (``status``)."""

    owner: Annotated[str | None, Field(max_length=255)] = None
    status: Literal["open", "done"] | None = None


class TaskPublic(BaseModel):
    id: int
    customer_id: int | None
    kind: str
    title: str
    owner: str | None
    status: str
    created_at: datetime
    closed_at: datetime | None


@router.patch("/tasks/{task_id}")
def change_task(task_id: RowId, body: TaskChange, db: DatabaseDep, key: Support) -> TaskPublic:
    with db.transaction() as session:
        before, after = repo.update_task(
            session, workspace_id(key), task_id,
            owner=body.owner, status=body.status, now=datetime.now(UTC),
        )  # fmt: skip
    record_after(
        db, key, "task.update", f"task:{task_id}",
        before={k: before[k] for k in ("owner", "status")},
        after={k: after[k] for k in ("owner", "status")},
    )  # fmt: skip
    return TaskPublic.model_validate(after)
