"""One mapping from errors to HTTP: ``{"code", "message", "errors": [...]}``, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clm.api.responses import JsonResponse
from clm.errors import ClmError, RateLimited

log = logging.getLogger("clm.api")


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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JsonResponse(
            error_body("internal_error", "Internal error; it has been logged"), status_code=500
        )
