"""The lazy public surface of the engage sub-packages (PEP 562).

The sub-packages use each other's modules, so a surface that imported its modules eagerly
would run them in a cycle; each public name is loaded from its module on first use instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that loads ``name`` from ``package.<where[name]>`` once."""

    def load(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # later look-ups find it without this function
        return value

    return load
