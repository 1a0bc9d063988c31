"""Segment JSON read so that numeric ids stay exact.

orjson reads an integer past 64 bits as a float: ``123456789012345678901234567890`` and
``123456789012345678901234567891`` both become ``1.2345678901234568e+29``, so two different
30-digit ``userId``s stored as the same string merged two people into one customer. A body
with a run of 20 or more digits (10**19 and up: where orjson may round) is read again by the
standard parser, whose integers are exact; the ids of its messages become the exact decimal
string, and other integers past 64 bits become floats, as the fast path reads them (so a
message is stored the same whichever path read it). NaN and Infinity stay invalid JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId")
_LONG_NUMBER = re.compile(rb"\d{20}")
_INT64 = range(-(2**63), 2**64)  # what orjson reads exactly


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range for a double")
    return value


def _ints_as_floats(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        return float(value)
    if isinstance(value, dict):
        return {key: _ints_as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ints_as_floats(item) for item in value]
    return value


def _exact_ids(message: Any) -> Any:
    if not isinstance(message, dict):
        return _ints_as_floats(message)
    ids = {
        key: str(message[key])
        for key in ID_FIELDS
        if isinstance(message.get(key), int) and not isinstance(message[key], bool)
    }
    return {**_ints_as_floats({k: v for k, v in message.items() if k not in ids}), **ids}


def loads(text: bytes) -> Any:
    """A Segment message, batch or JSONL line, with numeric ids exact (see the module).

    Raises ``orjson.JSONDecodeError`` (a ``ValueError``) on anything that is not JSON.
    """
    value = orjson.loads(text)
    if not _LONG_NUMBER.search(text):
        return value
    try:
        exact = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as exc:  # what orjson accepted the standard parser accepts, but be sure
        raise orjson.JSONDecodeError(str(exc), text.decode(errors="replace"), 0) from exc
    if isinstance(exact, dict) and isinstance(exact.get("batch"), list):
        return {**_exact_ids({k: v for k, v in exact.items() if k != "batch"}),
                "batch": [_exact_ids(message) for message in exact["batch"]]}  # fmt: skip
    return _exact_ids(exact)
