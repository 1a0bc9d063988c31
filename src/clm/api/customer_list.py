"""The customer list under ``/api/v1``: search, filter, sort and page in the database, and
the same query as CSV. (A path of its own: ``/customers/{id}`` owns every ``/customers/x``.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import ValidationError as PydanticError
from sqlalchemy.sql.elements import ColumnElement

from clm.api.deps import DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute
from clm.errors import FieldError, ValidationError
from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.conditions import Condition
from clm.lifecycle.customer_list import (
    MAX_COUNT,
    MAX_DAYS,
    MAX_PER_PAGE,
    CustomerList,
    CustomerQuery,
    RangeFilters,
    SortKey,
    export_csv,
    list_customers,
)
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.history_filters import Direction, HistoryFilters, history_conditions
from clm.lifecycle.saved_segments import conditions_of
from clm.store.engine import Database
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1", tags=["customers"], route_class=ClmRoute)

Search = Annotated[str | None, Query(max_length=200, description="part of a name, email or id")]
Stages = Annotated[str | None, Query(max_length=500, description="comma-separated stages")]
States = Annotated[
    str | None,
    Query(pattern=r"^(happy|at_risk|unhappy)(,(happy|at_risk|unhappy))*$",
          description="comma-separated health states: happy, at_risk, unhappy"),
]  # fmt: skip
Order = Annotated[str, Query(pattern="^(asc|desc)$")]
Rfm = Annotated[
    str | None,
    Query(max_length=500, description="comma-separated RFM segments, e.g. Champions,At risk"),
]
SavedSegment = Annotated[RowId | None, Query(description="only members of this saved segment")]


Low = Annotated[float | None, Query(description="at least this (inclusive)")]
High = Annotated[float | None, Query(description="at most this (inclusive)")]
Count = Annotated[int | None, Query(ge=0, le=MAX_COUNT, description="a count of purchases")]


def range_filters(
    health_score_min: Low = None, health_score_max: High = None,
    p_alive_min: Low = None, p_alive_max: High = None,
    clv_min: Low = None, clv_max: High = None,
    revenue_min: Low = None, revenue_max: High = None,
    purchases_min: Count = None,
    purchases_max: Count = None,
    seen_from: Annotated[date | None, Query(description="last seen on or after (UTC)")] = None,
    seen_to: Annotated[date | None, Query(description="last seen on or before (UTC)")] = None,
    unseen_days: Annotated[
        int | None, Query(ge=0, le=MAX_DAYS, description="not seen for at least N days")
    ] = None,
) -> RangeFilters:  # fmt: skip
    """The range filters of the list's URL; bad bounds are field errors (422) at their name."""
    values = {name: value for name, value in locals().items() if value is not None}
    try:
        ranges = RangeFilters(**values)
    except PydanticError as exc:
        problems = [
            FieldError(("query", *(str(p) for p in e["loc"][:1])), e["msg"]) for e in exc.errors()
        ]
        raise ValidationError("Invalid customer list filter", problems) from None
    if problems := ranges.errors():
        raise ValidationError("Invalid customer list filter", problems)
    return ranges


Ranges = Annotated[RangeFilters, Depends(range_filters)]


Moment = Annotated[datetime | None, Query(description="an instant (ISO 8601; UTC if no zone)")]


def history_filters(
    as_of: Annotated[
        datetime | None,
        Query(description="stage and health_state as they stood at this instant (ISO 8601)"),
    ] = None,
    moved_since: Annotated[
        datetime | None, Query(description="moved after this instant (a window's start)")
    ] = None,
    moved_until: Moment = None,
    moved: Annotated[
        Direction | None, Query(description="moved up, down or new (first stage) in the window")
    ] = None,
    moved_to: Annotated[
        str | None, Query(max_length=500, description="moved into one of these stages (commas)")
    ] = None,
    health_fell: Annotated[
        bool, Query(description="health score lower at the window's end than at its start")
    ] = False,
) -> HistoryFilters:  # fmt: skip
    """The list's filters on the stage and health history (``clm.lifecycle.history_filters``);
    a window without its start is a field error (422)."""
    history = HistoryFilters(
        as_of=as_of, moved_since=moved_since, moved_until=moved_until, moved=moved,
        moved_to=_split(moved_to), health_fell=health_fell,
    )  # fmt: skip
    if problems := history.errors():
        raise ValidationError("Invalid customer list filter", problems)
    return history


History = Annotated[HistoryFilters, Depends(history_filters)]


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def customer_query(
    q: str | None, stage: str | None, health_state: str | None, sort: SortKey, order: str,
    rfm: str | None, ranges: RangeFilters,
) -> CustomerQuery:  # fmt: skip
    """The list's query from its URL parameters; a bad one is a field error (422)."""
    try:
        return CustomerQuery(
            q=q or None, stage=_split(stage), health_state=_split(health_state),
            rfm=_split(rfm), sort=sort, order=order, ranges=ranges,
        )  # fmt: skip
    except PydanticError as exc:
        problems = [
            FieldError(("query", *(str(p) for p in e["loc"][:1])), e["msg"]) for e in exc.errors()
        ]
        raise ValidationError("Invalid customer list query", problems) from None


@dataclass(frozen=True)
class ListRequest:
    """A view of the customer list as its URL asks for it: the query (search, filters, sort,
    page) and the filters on the history."""

    query: CustomerQuery
    history: HistoryFilters


def list_request(
    ranges: Ranges,
    history: History,
    q: Search = None,
    stage: Stages = None,
    health_state: States = None,
    sort: SortKey = SortKey.id,
    order: Order = "asc",
    rfm: Rfm = None,
) -> ListRequest:
    """Every filter and the sort of the list's URL: one dependency, so the customer list, a
    segment's members and both CSVs take the same parameters with the same field errors."""
    return ListRequest(customer_query(q, stage, health_state, sort, order, rfm, ranges), history)


def page_of(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 50,
) -> tuple[int, int]:
    """The page to show and its length."""
    return page, per_page


def paged_list_request(
    request: Annotated[ListRequest, Depends(list_request)],
    paging: Annotated[tuple[int, int], Depends(page_of)],
) -> ListRequest:
    """``list_request`` and the page to show (its parameters after the filters')."""
    page, per_page = paging
    query = request.query.model_copy(update={"page": page, "per_page": per_page})
    return ListRequest(query, request.history)


ListFilters = Annotated[ListRequest, Depends(list_request)]
PagedListFilters = Annotated[ListRequest, Depends(paged_list_request)]


def _filtered(
    db: Database, ws: int, request: ListRequest, segment: int | None
) -> tuple[CustomerQuery, list[Condition], list[ColumnElement[bool]]]:
    """The query, the saved segment's conditions and the history filters as conditions; with
    ``as_of`` the stage and health filters move from the current state to the history."""
    query, history = request.query, request.history
    conditions = conditions_of(db, ws, segment) if segment is not None else []
    if not history.active:
        return query, conditions, []
    stage_id = get_stage_model(db, ws)[0].id
    health_id = get_scorecard(db, ws)[0]
    extra = history_conditions(
        history, query.stage, query.health_state, stage_id, health_id, datetime.now(UTC),
        db.engine.dialect.name,
    )  # fmt: skip
    if history.as_of is not None:
        query = query.model_copy(update={"stage": [], "health_state": []})
    return query, conditions, extra


def customer_page(db: Database, ws: int, request: ListRequest, segment: int | None) -> CustomerList:
    """One page of the customers ``request`` asks for (among a saved segment's members)."""
    query, conditions, extra = _filtered(db, ws, request, segment)
    return list_customers(db, ws, query, conditions=conditions, extra=extra)


def customer_csv(
    db: Database, ws: int, request: ListRequest, segment: int | None, filename: str
) -> StreamingResponse:
    """Every customer ``request`` asks for (among a saved segment's members), as a CSV
    download; an unknown segment is a 404 before the first byte."""
    query, conditions, extra = _filtered(db, ws, request, segment)
    return StreamingResponse(
        export_csv(db, ws, query, conditions=conditions, extra=extra),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, a header row first"}
}


@router.get("/customer-list")
def get_customer_list(
    db: DatabaseDep, key: Reader, request: PagedListFilters, segment: SavedSegment = None
) -> CustomerList:
    """Customers with stage, health, RFM segment, P(alive), CLV, revenue and last seen, read
    from each customer's stored current state (at most one live pass old); e.g. the at-risk
    list is ``?health_state=at_risk,unhappy&sort=clv&order=desc``; ``segment`` keeps a saved
    segment's members; ``clv_min=100&unseen_days=30`` the valuable ones gone quiet (each
    range is a condition of a segment: ``health_score``, ``p_alive``, ``clv``, ``revenue``,
    ``purchases``, ``last_seen_date``, ``last_seen_days``). The history filters open the
    overview's numbers: ``stage=trial&as_of=2024-01-07T23:59:59Z`` who stood in trial then,
    ``moved=up&moved_since=...&moved_until=...`` the week's movers up, ``moved_to=loyalty``
    who moved into loyalty, ``health_fell=true`` whose score fell."""
    return customer_page(db, workspace_id(key), request, segment)


@router.get("/customer-list.csv", response_class=StreamingResponse, responses=CSV_RESPONSES)
def get_customer_list_csv(
    db: DatabaseDep, key: Reader, request: ListFilters, segment: SavedSegment = None
) -> StreamingResponse:
    """Every customer the same filters match, as CSV."""
    return customer_csv(db, workspace_id(key), request, segment, "customers.csv")
