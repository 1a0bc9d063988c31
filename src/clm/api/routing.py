"""The route class of every CLM router: request bodies are parsed as the tracking API parses
them, by orjson, never by the standard library's ``json``.

The standard parser accepts what JSON does not: ``NaN``, ``Infinity`` and ``1e400`` (read as
``inf``), and integers of any size. Those reached the database as values no JSON column can
store back (``orjson`` refuses integers past 64 bits, PostgreSQL's ``jsonb`` refuses ``NaN``)
and answered 500. NUL characters, which PostgreSQL cannot store, are stripped from bodies
and refused in parameters. orjson refuses the non-finite numbers as invalid JSON (a 422 naming the
position) and reads an integer past 64 bits as a float, as JavaScript would.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from clm.errors import FieldError, ValidationError
from clm.store.storable import without_nul


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


class ClmRoute(APIRoute):
    """An ``APIRoute`` whose handler sees a request that parses JSON strictly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json_handler(request: Request) -> Response:
            _refuse_nul_in_url(request)
            return await handler(_JsonRequest(request.scope, request.receive))

        return strict_json_handler
