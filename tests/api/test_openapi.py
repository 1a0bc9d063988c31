"""The whole HTTP API, as its OpenAPI document describes it, under generated input.

Three checks that cover every route, including the ones added later:
- no integer input is unbounded: a number past 64 bits used to reach the database driver
  and answer 500 (SQLite's ``OverflowError``); a bounded schema makes it a field-level 422;
- no float in a request body accepts ``inf`` or ``nan``;
- schemathesis sends generated requests (a fixed seed, a bounded number of examples) to every
  operation of a real server over loopback, with a valid workspace key, on SQLite and
  PostgreSQL: no answer is a 5xx, and every answer matches the status codes, content types
  and response schemas the document declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from hypothesis import HealthCheck, Phase, given, seed, settings
from pydantic import BaseModel
from schemathesis import checks as st_checks
from schemathesis.core.failures import FailureGroup

from clm.api.app import create_app
from clm.api.routing import ClmRoute
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.storable import MAX_BIGINT
from tests.conftest import LiveServer, Tenant

EXAMPLES_PER_OPERATION = 12


def _openapi(db: Database) -> dict[str, Any]:
    return create_app(db).openapi()


def _integers(
    schema: dict[str, Any], where: str, components: dict[str, Any], seen: frozenset[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every integer schema inside ``schema`` with the path that leads to it."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _integers(components[name], name, components, seen | {name})
        return
    if schema.get("type") == "integer":
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from _integers(option, where, components, seen)
    for name, prop in schema.get("properties", {}).items():
        yield from _integers(prop, f"{where}.{name}", components, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _integers(schema[key], f"{where}[]", components, seen)


def test_every_integer_input_fits_a_64_bit_column(sqlite_db: Database) -> None:
    spec = _openapi(sqlite_db)
    components = spec["components"]["schemas"]
    unbounded: list[str] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            inputs = [
                (f"{method.upper()} {path} ?{p['name']}", p["schema"])
                for p in operation.get("parameters", [])
            ]
            for content in operation.get("requestBody", {}).get("content", {}).values():
                inputs.append((f"{method.upper()} {path} body", content["schema"]))
            for where, schema in inputs:
                for field, integer in _integers(schema, where, components, frozenset()):
                    # FastAPI writes bounds as floats: 2**63 - 1 becomes 2.0**63.
                    low, high = integer.get("minimum"), integer.get("maximum")
                    bounded = low is not None and high is not None
                    if (
                        not bounded
                        or float(high) > float(MAX_BIGINT)
                        or float(low) < -float(MAX_BIGINT)
                    ):
                        unbounded.append(field)
    assert sorted(set(unbounded)) == []


def _floats_allowing_inf(schema: Any, allow_inf: bool, where: str) -> Iterator[str]:
    """Float validators in a pydantic core schema that would accept ``inf``/``nan``."""
    if isinstance(schema, dict):
        if schema.get("type") == "model":
            allow_inf = schema.get("config", {}).get("allow_inf_nan", True)
            where = schema["cls"].__name__
        if schema.get("type") == "float" and schema.get("allow_inf_nan", allow_inf):
            yield where
        for key, value in schema.items():
            if key not in ("cls", "metadata", "config"):
                yield from _floats_allowing_inf(value, allow_inf, where)
    elif isinstance(schema, list | tuple):
        for value in schema:
            yield from _floats_allowing_inf(value, allow_inf, where)


def _body_models(app: FastAPI) -> Iterator[type[BaseModel]]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.body_field is not None:
            annotation = route.body_field.field_info.annotation
            for candidate in (annotation, *getattr(annotation, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    yield candidate


def test_no_request_body_accepts_infinity_or_nan(sqlite_db: Database) -> None:
    models = set(_body_models(create_app(sqlite_db)))
    assert len(models) > 10  # the walk found the bodies
    lax = {
        where
        for model in models
        for where in _floats_allowing_inf(model.__pydantic_core_schema__, True, model.__name__)
    }
    assert sorted(lax) == []


def test_every_route_parses_json_strictly(sqlite_db: Database) -> None:
    """Routers made with ``route_class=ClmRoute``: bodies parsed by orjson, NUL stripped."""
    app = create_app(sqlite_db)
    plain = [
        f"{sorted(route.methods)} {route.path}"
        for context in iter_route_contexts(app.routes)
        if isinstance(route := context.original_route, APIRoute) and not isinstance(route, ClmRoute)
    ]
    assert plain == []


# --- schemathesis over every operation ---------------------------------------------------

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]


def _populate(db: Database, tenant: Tenant) -> None:
    """A few customers and purchases, so generated small ids sometimes hit real rows."""
    messages: list[dict[str, Any]] = []
    for n in range(1, 4):
        messages.append(
            {
                "type": "identify",
                "userId": f"u{n}",
                "traits": {"email": f"u{n}@example.com"},
                "timestamp": f"2026-01-0{n}T10:00:00Z",
            }
        )
        messages.append(
            {
                "type": "track",
                "userId": f"u{n}",
                "event": "Order Completed",
                "properties": {"revenue": 10 * n},
                "timestamp": f"2026-01-0{n}T11:00:00Z",
            }
        )
    ingest(db, tenant.id, messages)


@pytest.mark.slow
def test_every_operation_survives_generated_input(live_server: LiveServer, tenant: Tenant) -> None:
    _populate(live_server.db, tenant)
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {tenant.secret_key}"}
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @seed(16)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # report the first failure, unshrunk
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_server.url, headers=headers, checks=CHECKS)

        try:
            exercise()
        except (FailureGroup, AssertionError) as exc:
            failures[operation.label] = str(exc)[:2000]
    assert operations > 60  # every route was reached, not an empty document
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
