"""Saved segments under ``/api/v1/segments``: named customer-list filters, their members (the
customer list with the segment applied, paged and sorted in the database), the members as
CSV, and the size over time. Reading needs ``read``; saving, changing and deleting need
``marketing`` (the permission that edits playbooks, which trigger on segments), audited."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from clm.accounts.audit import record_after
from clm.api.customer_list import (
    CSV_RESPONSES,
    ListFilters,
    PagedListFilters,
    customer_csv,
    customer_page,
)
from clm.api.deps import DatabaseDep, Marketer, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.lifecycle.customer_list import CustomerList
from clm.lifecycle.saved_segments import (
    ConditionsDraft,
    SegmentCreate,
    SegmentPreview,
    SegmentPublic,
    SegmentSizes,
    SegmentUpdate,
    create_segment,
    delete_segment,
    get_segment,
    list_segments,
    preview_conditions,
    sizes,
    update_segment,
)
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1/segments", tags=["segments"], route_class=ClmRoute)


def _audited(segment: SegmentPublic) -> dict[str, object]:
    return segment.model_dump(mode="json", exclude={"size"})


@router.get("")
def get_segments(db: DatabaseDep, key: Reader, live: bool = False) -> list[SegmentPublic]:
    """Every saved segment with its latest recorded size and its day (``size_as_of``: the live
    loop records one a day, saving records today's); ``?live=true`` counts each now."""
    return list_segments(db, workspace_id(key), live=live)


@router.post("", status_code=201)
def post_segment(body: SegmentCreate, db: DatabaseDep, key: Marketer) -> SegmentPublic:
    """Save a filter as a named segment (conditions are checked field by field)."""
    saved = create_segment(db, workspace_id(key), body, key.actor)
    record_after(db, key, "segment.create", f"segment:{saved.id}", after=_audited(saved))
    return saved


@router.post("/preview")
def post_preview(body: ConditionsDraft, db: DatabaseDep, key: Marketer) -> SegmentPreview:
    """How many customers draft conditions would hold now, without saving them. An editor
    calls this as people type, so a draft with mistakes is an ordinary answer (``valid:
    false`` and the field errors saving would give as a 422), not an error status."""
    return preview_conditions(db, workspace_id(key), body)


@router.get("/{segment_id}")
def get_one_segment(segment_id: RowId, db: DatabaseDep, key: Reader) -> SegmentPublic:
    return get_segment(db, workspace_id(key), segment_id)


@router.patch("/{segment_id}")
def patch_segment(
    segment_id: RowId, body: SegmentUpdate, db: DatabaseDep, key: Marketer
) -> SegmentPublic:
    """Rename, describe or change the conditions (which restarts the size history)."""
    before, after = update_segment(db, workspace_id(key), segment_id, body)
    record_after(
        db, key, "segment.update", f"segment:{segment_id}",
        before=_audited(before), after=_audited(after),
    )  # fmt: skip
    return after


@router.delete("/{segment_id}", status_code=204)
def remove_segment(segment_id: RowId, db: DatabaseDep, key: Marketer) -> Response:
    """Delete a segment (refused while a playbook triggers on it)."""
    before = delete_segment(db, workspace_id(key), segment_id)
    record_after(db, key, "segment.delete", f"segment:{segment_id}", before=_audited(before))
    return Response(status_code=204)


@router.get("/{segment_id}/members")
def get_members(
    segment_id: RowId, db: DatabaseDep, key: Reader, request: PagedListFilters
) -> CustomerList:
    """The segment's members now: the customer list (same columns, filters and sorts)."""
    return customer_page(db, workspace_id(key), request, segment_id)


@router.get("/{segment_id}/members.csv", response_class=StreamingResponse, responses=CSV_RESPONSES)
def get_members_csv(
    segment_id: RowId, db: DatabaseDep, key: Reader, request: ListFilters
) -> StreamingResponse:
    """Every member of the segment the same filters match, as CSV."""
    return customer_csv(db, workspace_id(key), request, segment_id, f"segment-{segment_id}.csv")


@router.get("/{segment_id}/sizes")
def get_sizes(segment_id: RowId, db: DatabaseDep, key: Reader) -> SegmentSizes:
    """The segment's size at the end of each day it changed (or was recorded)."""
    return sizes(db, workspace_id(key), segment_id)
