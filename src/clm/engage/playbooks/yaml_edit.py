"""Write a form's edit into the user's own YAML text, keeping its comments and layout.

A form editor holds the playbook as plain data; writing that data out afresh would drop every
comment and reorder or reindent what the person wrote. Instead the text is loaded with
ruamel.yaml's round-trip loader (which keeps comments, key order, quoting and indentation),
only the values that differ are changed in place, and the document is written back: an
unchanged part of the text stays byte for byte as it was.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent


def edit_yaml(
    text: str, data: dict[str, Any], place: Callable[[list[str], str], int] | None = None
) -> str | None:
    """``text`` with its mapping changed to ``data`` (comments, order and indentation kept),
    or None when ``text`` is not a YAML mapping. ``place(keys, key)`` says where a new
    top-level key goes among the existing ``keys`` (default: at the end)."""
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 100
    try:
        document, sequence, offset = load_yaml_guess_indent(text, yaml=yaml)
    except YAMLError:
        return None
    if not isinstance(document, CommentedMap):
        return None
    _merge_map(document, data, place)
    mapping = _mapping_indent(text)
    offset = offset or 0
    yaml.indent(mapping=mapping, sequence=sequence or mapping + offset, offset=offset)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _mapping_indent(text: str) -> int:
    """How far the text indents a mapping under its key (2 when it has none to tell)."""
    parent: int | None = None
    for line in text.splitlines():
        content = line.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        depth = len(line) - len(content)
        if parent is not None and depth > parent and not content.startswith("- "):
            return depth - parent
        key_only = content.rstrip().endswith(":") and not content.startswith("- ")
        parent = depth if key_only else None
    return 2


def _same(old: Any, new: Any) -> bool:
    """Equal and of the same kind (YAML's ``1``, ``1.0``, ``true`` and ``'1'`` all differ)."""
    kinds = (bool, int, float, str)
    return old == new and all(isinstance(old, k) == isinstance(new, k) for k in kinds)


def _merge(old: Any, new: Any) -> Any:
    """``new``, reusing ``old``'s node (and so its comments) where both are containers."""
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        _merge_map(old, new)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        _merge_seq(old, new)
        return old
    return old if _same(old, new) else new


def _merge_map(
    old: CommentedMap, new: dict[str, Any], place: Callable[[list[str], str], int] | None = None
) -> None:
    for key in [k for k in old if k not in new]:
        del old[key]
    for key, value in new.items():
        if key in old:
            merged = _merge(old[key], value)
            if merged is not old[key]:
                old[key] = merged
        elif place is not None:
            old.insert(place(list(old), key), key, value)
        else:
            old[key] = value


def _id(item: Any) -> Any:
    return item.get("id") if isinstance(item, dict) else None


def _kind(item: Any) -> Any:
    return item.get("type") if isinstance(item, dict) else type(item)


def _merge_seq(old: CommentedSeq, new: list[Any]) -> None:
    """Items with an ``id`` (playbook steps) follow their id when moved. The rest are paired
    in order with the old items whose id is gone (a renamed step, or items without ids) when
    of the same ``type``, so they keep their comments; an item that pairs with none is new."""
    by_id = {_id(item): item for item in old if _id(item) is not None}
    bases: list[Any] = [by_id.get(_id(item)) if _id(item) is not None else None for item in new]
    new_ids = {_id(item) for item in new} - {None}
    orphans = [item for item in old if _id(item) is None or _id(item) not in new_ids]
    for index, item in enumerate(new):
        if bases[index] is None:
            pair = next((o for o in orphans if _kind(o) == _kind(item)), None)
            if pair is not None:
                orphans.remove(pair)
                bases[index] = pair
    merged = [
        item if base is None else _merge(base, item) for base, item in zip(bases, new, strict=True)
    ]
    del old[len(merged) :]
    for position, item in enumerate(merged[: len(old)]):
        if item is not old[position]:
            old[position] = item
    old.extend(merged[len(old) :])
