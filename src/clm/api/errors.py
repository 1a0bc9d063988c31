"""One mapping from errors to HTTP: ``{"code", "message", "errors": [...]}``, never a traceback."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clm.api.responses import JsonResponse
from clm.errors import ClmError, RateLimited

log = logging.getLogger("clm.api")


class FieldErrorBody(BaseModel):
    loc: list[str | int]
    message: str
    type: str


class ErrorBody(BaseModel):
    """Every refusal: a machine ``code`` (``validation_error``, ``not_found``, ...), a sentence,
    and for bad input the fields at fault."""

    success: Literal[False] = False
    code: str
    message: str
    errors: list[FieldErrorBody]


_CLIENT_ERROR = (
    "Refused: 401 no or unknown key, 403 the key may not do this, 404 not found (or not "
    "this workspace's), 409 conflict, 413 too large, 422 invalid input (``errors`` names "
    "each field)"
)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": _CLIENT_ERROR},
    503: {"model": ErrorBody, "description": "A part CLM needs is down; retrying is safe"},
}
"""Declared on every route (the app's default), so the OpenAPI document lists what a client
must handle besides success; schemathesis holds every answer to it."""


def error_body(code: str, message: str, errors: list[dict[str, object]] | None = None) -> dict:  # type: ignore[type-arg]
    return {"success": False, "code": code, "message": message, "errors": errors or []}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClmError)
    async def _clm(_request: Request, exc: ClmError) -> JsonResponse:
        headers = {"WWW-Authenticate": "Basic, Bearer"} if exc.status_code == 401 else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return JsonResponse(
            {"success": False, **exc.as_dict()}, status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JsonResponse:
        errors = [
            {"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        return JsonResponse(
            error_body("validation_error", "Invalid request", errors), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JsonResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JsonResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def _unstorable(request: Request, exc: Exception) -> JsonResponse:
        # A value the database cannot hold (a number past 64 bits, text it cannot store) that
        # no edge check caught: the input's fault, so a 422, and logged to add that check.
        log.warning("unstorable value on %s %s: %s", request.method, request.url.path, exc)
        message = "A value is outside what the database can store"
        return JsonResponse(error_body("validation_error", message), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JsonResponse(
            error_body("internal_error", "Internal error; it has been logged"), status_code=500
        )
