"""The web app's permission map checked against the server: every action in
``static/lib/access.js`` names a route that exists and needs a permission; the permission each
route needs, read from its dependencies, is the one the hand-written route matrix
(``tests/accounts/test_route_matrix.py``) allows; every action a page asks about is in the map
and every action in the map is asked about; and ``/api/v1/workspace`` serves that map."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from clm.api.routing import route_permissions
from clm.store.engine import Database
from clm.web import create_app
from tests.accounts import test_route_matrix as matrix
from tests.accounts.routes import app_routes
from tests.conftest import make_tenant
from tests.web.servers import serving

STATIC = Path(__file__).parents[2] / "src" / "clm" / "web" / "static"
# The people and keys each permission lets in, as the route matrix writes them by hand.
ALLOWED_BY = {
    "read": matrix.READ, "support": matrix.SUPPORT, "marketing": matrix.MARKETING,
    "configure": matrix.CONFIGURE, "members": matrix.MEMBERS, "audit": matrix.AUDIT,
    "workspaces": matrix.WORKSPACES,
}  # fmt: skip


def js_actions() -> dict[str, tuple[str, str]]:
    """ACTIONS of access.js: action -> (method, path)."""
    text = (STATIC / "lib" / "access.js").read_text()
    block = text[text.index("export const ACTIONS = {") : text.index("};")]
    pairs = re.findall(r'"([\w.-]+)": "([A-Z]+) (/[^"]*)"', block)
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    assert len(pairs) == len(lines), "every ACTIONS line reads as action: METHOD /path"
    return {action: (method, path) for action, method, path in pairs}


def asked_actions() -> dict[str, set[str]]:
    """Each action name a page asks about (``can("x")``, ``lacks("x")``, ``action="x"``,
    ``action: "x"``) -> the files asking."""
    asked: dict[str, set[str]] = {}
    for source in STATIC.rglob("*.js"):
        if "node_modules" in source.parts or source.name == "access.js":
            continue
        text = source.read_text()
        calls = re.findall(r"\b(?:can|lacks)\(([^()]*)\)", text)
        # The strings in the call, but for those compared with (``p.status === "paused"``).
        names = [
            m.group(1)
            for call in calls
            for m in re.finditer(r'"([^"]*)"', call)
            if not re.search(r"[=!]==\s*$", call[: m.start()])
        ]
        names += re.findall(r'\baction(?:=|: )"([^"]+)"', text)
        for name in names:
            asked.setdefault(name, set()).add(str(source.relative_to(STATIC)))
    return asked


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    db = Database.open(f"sqlite:///{tmp_path_factory.mktemp('access')}/access.sqlite")
    yield create_app(db)
    db.dispose()


def test_every_action_names_a_route_that_needs_a_permission(app: FastAPI) -> None:
    actions = js_actions()
    assert len(actions) >= 15  # the parse found the map
    routes = app_routes(app)
    needs = route_permissions(app.routes)
    for action, (method, path) in actions.items():
        assert (method, path) in routes, f"{action}: no route {method} {path}"
        assert f"{method} {path}" in needs, f"{action}: {method} {path} needs no permission"


def test_each_routes_permission_is_what_the_route_matrix_allows(app: FastAPI) -> None:
    needs = route_permissions(app.routes)
    for route, permission in needs.items():
        method, path = route.split(" ", 1)
        assert matrix.TABLE[method, path] == ALLOWED_BY[permission], route
    # ... and every route the matrix limits to one permission's callers is in the map.
    limited = {
        f"{method} {path}"
        for (method, path), allowed in matrix.TABLE.items()
        if any(allowed == who for who in ALLOWED_BY.values())
    }
    assert limited <= needs.keys(), sorted(limited - needs.keys())
    # The OpenAPI operations say the same (x-permission), for API users.
    documented = {
        f"{method.upper()} {path}": operation["x-permission"]
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if "x-permission" in operation
    }
    assert documented == needs


def test_pages_ask_only_about_actions_in_the_map_and_about_all_of_them() -> None:
    actions, asked = js_actions(), asked_actions()
    unknown = {name: files for name, files in asked.items() if name not in actions}
    assert not unknown, f"actions missing from access.js ACTIONS: {unknown}"
    assert set(actions) - set(asked) == set(), "ACTIONS no page asks about"


def test_the_workspace_answer_carries_the_map(sqlite_db: Database) -> None:
    tenant = make_tenant(sqlite_db, "access")
    with serving(sqlite_db) as url:
        answer = httpx.get(
            f"{url}/api/v1/workspace", headers={"Authorization": f"Bearer {tenant.secret_key}"}
        ).json()
    served = answer["route_permissions"]
    assert served["POST /api/v1/engage/playbooks/{name}/pause"] == "marketing"
    assert served["POST /api/v1/customers/{customer_id}/notes"] == "support"
    assert served["PUT /api/v1/lifecycle/model"] == "configure"
    assert all(f"{m} {p}" in served for m, p in js_actions().values())
