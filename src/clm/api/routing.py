"""The route class of every CLM router: request bodies are parsed as the tracking API parses
them, by orjson, never by the standard library's ``json``; the OpenAPI operation names the
permission the route's dependencies require.

The standard parser accepts what JSON does not: ``NaN``, ``Infinity`` and ``1e400`` (read as
``inf``), and integers of any size. Those reached the database as values no JSON column can
store back (``orjson`` refuses integers past 64 bits, PostgreSQL's ``jsonb`` refuses ``NaN``)
and answered 500. NUL characters, which PostgreSQL cannot store, are stripped from bodies
and refused in parameters. orjson refuses the non-finite numbers as invalid JSON (a 422 naming the
position) and reads an integer past 64 bits as a float, as JavaScript would.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from clm.accounts import Permission
from clm.errors import FieldError, ValidationError
from clm.store.storable import without_nul

PERMISSION_KEY = "x-permission"  # in an OpenAPI operation: the permission the route needs


def utf8_text(body: bytes, what: str) -> str:
    """A text body as a string, or a field-level 422: a client's Latin-1 file is its mistake,
    not a 500. A UTF-8 byte-order mark (spreadsheet exports add one) is dropped."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"The {what} is not UTF-8", [FieldError(("body",), str(exc), "unicode_decode")]
        ) from exc


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            parsed = orjson.loads(body)  # JSONDecodeError → FastAPI's 422
            # NUL: stripped as in events (``without_nul``); JSON must escape it, so a cheap test.
            self._json = without_nul(parsed) if b"\\u0000" in body else parsed
        return self._json


def _refuse_nul_in_url(request: Request) -> None:
    """A NUL in a path or query parameter cannot be looked up in PostgreSQL: refused, 422."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in value:
            raise ValidationError(
                "Parameters may not contain NUL characters",
                [FieldError(("query", name), "contains a NUL character (%00)", "string_nul")],
            )


def _permissions(dependant: Dependant) -> set[Permission]:
    """The permissions a route's dependencies (and theirs) require (``deps.Require``)."""
    found = set()
    for sub in dependant.dependencies:
        needed = getattr(sub.call, "permission", None)
        if isinstance(needed, Permission):
            found.add(needed)
        found |= _permissions(sub)
    return found


def route_permissions(routes: Sequence[BaseRoute]) -> dict[str, str]:
    """``"METHOD /path"`` -> the permission the route needs, for every route that needs one:
    what the web app asks before it offers a button that calls the route."""
    found = {}
    for context in iter_route_contexts(routes):
        dependant = getattr(context, "dependant", None)
        needed = _permissions(dependant) if isinstance(dependant, Dependant) else set()
        for method in sorted(context.methods or ()) if needed else ():
            found[f"{method} {context.path}"] = ",".join(sorted(needed))
    return found


class ClmRoute(APIRoute):
    """An ``APIRoute`` whose handler sees a request that parses JSON strictly, and whose
    OpenAPI operation names the permission it needs (``x-permission``), read from its own
    dependencies: the one place a route's need is written."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        needed = _permissions(self.dependant)
        if needed:
            self.openapi_extra = {
                **(self.openapi_extra or {}),
                PERMISSION_KEY: ",".join(sorted(needed)),
            }

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json_handler(request: Request) -> Response:
            _refuse_nul_in_url(request)
            return await handler(_JsonRequest(request.scope, request.receive))

        return strict_json_handler
