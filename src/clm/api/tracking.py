"""The Segment HTTP Tracking API (``/v1/*``): what Segment's SDKs and servers speak.

Authentication as Segment does it: the workspace write key as the Basic user name, or
``writeKey`` in the body. Limits as Segment's: 32 KB a message, 500 KB a batch (after gunzip).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic
from fastapi import APIRouter, Request

from clm.accounts import Permission, authorize
from clm.api.cors import STATE_KEY as CORS_STATE_KEY
from clm.api.deps import DatabaseDep, basic_username, key_principal
from clm.api.responses import JsonResponse
from clm.api.routing import ClmRoute
from clm.config import get_settings
from clm.errors import ClmError, FieldError, PayloadTooLarge, PermissionDenied, ValidationError
from clm.ingest import jsontext
from clm.ingest.schemas import Batch, IngestResult, StrictBatch
from clm.ingest.service import parse_messages, pydantic_errors
from clm.ingest.writer import EventWriter
from clm.ingest.writer_process import RemoteWriter
from clm.worker.nudge import nudge

router = APIRouter(prefix="/v1", tags=["tracking"], route_class=ClmRoute)


class MalformedJson(ClmError):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    if declared and declared.isdigit() and not gzipped and int(declared) > limit:
        raise PayloadTooLarge(f"Body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    inflater = zlib.decompressobj(wbits=31) if gzipped else None
    async for chunk in request.stream():
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, limit + 1 - size)
            except zlib.error as exc:
                raise ValidationError(f"Body is not valid gzip: {exc}") from exc
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return jsontext.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(
            "Body is not valid JSON", [FieldError(("body",), str(exc), "json_invalid")]
        ) from exc


def _write_key(request: Request, payload: Any) -> str | None:
    key = basic_username(request.headers.get("authorization"))
    if key is None and isinstance(payload, dict):
        body_key = payload.get("writeKey")
        key = body_key if isinstance(body_key, str) else None
    return key


def _workspace_for(request: Request, db: Any, payload: Any) -> int:
    principal = key_principal(db, _write_key(request, payload))
    if not principal.can(Permission.INGEST):
        raise PermissionDenied("Events are sent with a workspace write key")
    workspace = authorize(principal, Permission.INGEST).workspace_id
    assert workspace is not None  # authorize() refuses a key without one
    origin = request.headers.get("origin")
    same_origin = origin == f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and not same_origin:  # a page elsewhere: allowed for this workspace?
        if not request.app.state.cors_origins.allows(workspace, origin):
            raise PermissionDenied(f"Origin {origin} may not send events to this workspace")
        setattr(request.state, CORS_STATE_KEY, origin)
    return workspace


def _field_errors(errors: list[dict[str, Any]], *prefix: str | int) -> list[FieldError]:
    return [FieldError((*prefix, *e["loc"]), e["message"], e["type"]) for e in errors]


def _rejections(result: IngestResult) -> list[FieldError]:
    return [
        error
        for item in result.rejected
        for error in _field_errors(item.errors, "batch", item.index)
    ]


async def store(
    request: Request,
    workspace_id: int,
    raws: list[Any],
    *,
    received_at: datetime,
    batch_sent_at: datetime | None = None,
    batch_context: dict[str, Any] | None = None,
) -> IngestResult:
    """Validate here, then hand the good records to the group-commit writer and wait for it."""
    records, rejected = parse_messages(
        raws, received_at, batch_sent_at=batch_sent_at, batch_context=batch_context
    )
    writer: EventWriter | RemoteWriter = request.app.state.writer
    stored, duplicates = await writer.store(workspace_id, records)
    if stored:
        nudge(workspace_id)  # committed: the live worker may look now (never waits on the queue)
    return IngestResult(stored=stored, duplicates=duplicates, rejected=rejected)


async def _single(kind: str, request: Request, db: DatabaseDep) -> JsonResponse:
    settings = get_settings()
    payload = parse_json(await read_body(request, settings.max_event_bytes))
    workspace_id = _workspace_for(request, db, payload)
    if not isinstance(payload, dict):
        raise ValidationError("Body must be a JSON object")
    payload = {**payload, "type": kind}
    payload.pop("writeKey", None)
    result = await store(request, workspace_id, [payload], received_at=datetime.now(UTC))
    if result.rejected:
        raise ValidationError(f"Invalid {kind} message", _field_errors(result.rejected[0].errors))
    return JsonResponse({"success": True})


def _route(kind: str) -> None:
    async def endpoint(request: Request, db: DatabaseDep) -> JsonResponse:
        return await _single(kind, request, db)

    endpoint.__name__ = f"{kind}_message"
    endpoint.__doc__ = f"Segment ``{kind}`` call: one message, stored before the 200."
    router.add_api_route(f"/{kind}", endpoint, methods=["POST"], name=kind)
    # analytics.js posts to the one-letter paths (``/v1/t`` for track, ...), as Segment's API
    # accepts them.
    router.add_api_route(
        f"/{kind[0]}", endpoint, methods=["POST"], name=f"{kind}_short", include_in_schema=False
    )


for _kind in ("identify", "track", "page", "screen", "group", "alias"):
    _route(_kind)


@router.post("/batch")
@router.post("/import")
@router.post("/b", include_in_schema=False)  # analytics.js in batching mode
async def batch(request: Request, db: DatabaseDep) -> JsonResponse:
    """Many messages at once. Valid ones are stored even when others are rejected: the reply
    lists each rejected message by its index, with field-level reasons."""
    received_at = datetime.now(UTC)
    payload = parse_json(await read_body(request, get_settings().max_batch_bytes))
    workspace_id = _workspace_for(request, db, payload)
    try:
        envelope = Batch.model_validate(payload)
        if not all(type(message) is dict for message in envelope.batch):
            StrictBatch.model_validate(payload)  # raises, naming each message that is not
    except pydantic.ValidationError as exc:
        errors = [
            FieldError(tuple(e["loc"]), e["message"], e["type"]) for e in pydantic_errors(exc)
        ]
        raise ValidationError("Invalid batch", errors) from exc
    result = await store(
        request,
        workspace_id,
        envelope.batch,
        received_at=received_at,
        batch_sent_at=envelope.sent_at,
        batch_context=envelope.context or None,
    )
    if result.rejected and not result.stored and not result.duplicates:
        raise ValidationError("No message in the batch is valid", _rejections(result))
    return JsonResponse(result.model_dump(by_alias=True))
