"""Every route an app answers, as (method, path): FastAPI 0.16x keeps included routers lazily,
so walk them as the router does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount, Route


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def add(route: Any, path: str) -> None:
        if isinstance(route, Mount):
            found.add(("MOUNT", path or "/"))
            return
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, path))

    def walk(routes: Iterable[Any]) -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):
                for candidate in route.effective_candidates():
                    if hasattr(candidate, "effective_candidates"):
                        walk([candidate])
                    else:
                        add(candidate.original_route, candidate.path)
            elif isinstance(route, Route | Mount):
                add(route, route.path)
            else:
                add(route, getattr(route, "path", ""))

    walk(app.routes)
    return found
