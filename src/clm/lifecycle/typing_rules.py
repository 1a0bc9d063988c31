"""Type-checking rule expressions, and spotting rules that can never fire.

Types: ``number``, ``bool``, ``string``, ``timestamp`` (epoch seconds of a first/last event) and
``days`` (a ``days_since`` feature). ``days`` may only be compared with a number, because the
engine turns each such comparison into the exact second a lapse happens.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from clm.lifecycle.expressions import (
    Arith,
    BoolOp,
    Call,
    Compare,
    ExpressionError,
    InList,
    Lit,
    Name,
    Node,
    Not,
    Prop,
    Type,
    literal_type,
)

EVENT_FIELDS: dict[str, Type] = {
    "name": "string",
    "type": "string",
    "channel": "string",
    "campaign": "string",
    "source": "string",
    "revenue": "number",
}


def check(node: Node, scope: Mapping[str, Type], allow_props: bool = False) -> Type | None:
    """The type of ``node``; ``None`` for the null literal. Raises ExpressionError."""
    if isinstance(node, Lit):
        return literal_type(node.value)
    if isinstance(node, Name):
        if node.name not in scope:
            raise ExpressionError(
                f"unknown feature '{node.name}'{did_you_mean(node.name, scope)}", node.line
            )
        return scope[node.name]
    if isinstance(node, Prop):
        if not allow_props:
            raise ExpressionError("properties.* is only allowed in an event filter", node.line)
        return None  # takes the type of what it is compared with
    if isinstance(node, Not):
        _want(node.operand, scope, allow_props, "bool", "'not' needs a true/false value")
        return "bool"
    if isinstance(node, BoolOp):
        for operand in node.operands:
            _want(operand, scope, allow_props, "bool", f"'{node.op}' needs true/false values")
        return "bool"
    if isinstance(node, Compare):
        return _check_compare(node, scope, allow_props)
    if isinstance(node, InList):
        operand_type = check(node.operand, scope, allow_props)
        kinds = {literal_type(v) for v in node.values}
        if None in kinds or len(kinds) != 1:
            raise ExpressionError("'in' needs literals of one type and no null", node.line)
        if operand_type is not None and operand_type not in kinds:
            raise ExpressionError(
                f"type mismatch: {operand_type} compared with {kinds.pop()} values", node.line
            )
        return "bool"
    if isinstance(node, Arith):
        for side in (node.left, node.right):
            if not isinstance(side, Prop):
                _want(side, scope, allow_props, "number", f"'{node.op}' needs numbers")
        return "number"
    if isinstance(node, Call):
        arg_types = [check(a, scope, allow_props) for a in node.args]
        if node.fn == "known":
            return "bool"
        first, second = arg_types
        if first and second and first != second:
            raise ExpressionError(f"type mismatch: coalesce({first}, {second})", node.line)
        return first or second
    raise ExpressionError("unsupported expression", node.line)


def _want(node: Node, scope: Mapping[str, Type], props: bool, kind: Type, message: str) -> None:
    found = check(node, scope, props)
    if found is not None and found != kind:
        raise ExpressionError(f"type mismatch: {message}, got {found}", node.line)


def _check_compare(node: Compare, scope: Mapping[str, Type], props: bool) -> Type:
    left, right = check(node.left, scope, props), check(node.right, scope, props)
    if left == "days" or right == "days":
        other = right if left == "days" else left
        if other != "number" or not isinstance(node.right if left == "days" else node.left, Lit):
            raise ExpressionError(
                "a days_since feature can only be compared with a number", node.line
            )
        return "bool"
    if left is None or right is None:
        return "bool"
    if left != right:
        raise ExpressionError(f"type mismatch: {left} {node.op} {right}", node.line)
    if left == "bool" and node.op not in ("==", "!="):
        raise ExpressionError(f"type mismatch: true/false values have no order ({node.op})")
    return "bool"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or nothing when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def always_true(node: Node, never_null: Mapping[str, float]) -> bool:
    """True when ``node`` holds for every customer; detects the obvious cases only.

    ``never_null`` gives the smallest value of the features that always have one (counts: 0),
    so ``purchase_count >= 0`` is always true; a feature that may be unknown (null) never makes
    a comparison always true.
    """
    if isinstance(node, Lit):
        return node.value is True
    if isinstance(node, Compare):
        bounds = _bounds(node, {})
        if bounds is None or bounds[0] not in never_null:
            return False
        name, low, high = bounds
        floor = never_null[name]
        return high[0] == float("inf") and (low[0] < floor or (low[0] == floor and low[1]))
    if isinstance(node, BoolOp) and node.op == "or":
        return any(always_true(v, never_null) for v in node.operands)
    if isinstance(node, BoolOp):
        return all(always_true(v, never_null) for v in node.operands)
    if isinstance(node, Not):
        return always_false(node.operand, never_null)
    return False


def always_false(node: Node, lower_bounds: Mapping[str, float]) -> bool:
    """True when ``node`` can never be true; detects the obvious cases only.

    ``lower_bounds`` gives the smallest value a feature can take (0 for counts): a rule such as
    ``purchase_count < 0`` is then never true, as is ``x >= 5 and x < 3``.
    """
    if isinstance(node, Lit):
        return node.value is not True
    if isinstance(node, Compare):
        bounds = _bounds(node, lower_bounds)
        return bounds is not None and _empty(bounds[1], bounds[2])
    if isinstance(node, BoolOp) and node.op == "or":
        return all(always_false(v, lower_bounds) for v in node.operands)
    if isinstance(node, BoolOp):
        if any(always_false(v, lower_bounds) for v in node.operands):
            return True
        return _conjunction_empty(node.operands, lower_bounds)
    return False


Interval = tuple[str, tuple[float, bool], tuple[float, bool]]  # name, (low, closed), (high, closed)


def _bounds(node: Compare, lower_bounds: Mapping[str, float]) -> Interval | None:
    if isinstance(node.left, Name) and isinstance(node.right, Lit):
        name, value, op = node.left.name, node.right.value, node.op
    elif isinstance(node.right, Name) and isinstance(node.left, Lit):
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
        name, value, op = node.right.name, node.left.value, flipped[node.op]
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or op == "!=":
        return None
    low: tuple[float, bool] = (lower_bounds.get(name, float("-inf")), True)
    high: tuple[float, bool] = (float("inf"), True)
    if op in (">", ">=", "=="):
        low = max(low, (float(value), op != ">"), key=lambda b: (b[0], not b[1]))
    if op in ("<", "<=", "=="):
        high = (float(value), op != "<")
    return name, low, high


def _empty(low: tuple[float, bool], high: tuple[float, bool]) -> bool:
    if low[0] > high[0]:
        return True
    return low[0] == high[0] and not (low[1] and high[1])


def _conjunction_empty(operands: tuple[Node, ...], lower_bounds: Mapping[str, float]) -> bool:
    ranges: dict[str, tuple[tuple[float, bool], tuple[float, bool]]] = {}
    for operand in operands:
        if not isinstance(operand, Compare):
            continue
        bounds = _bounds(operand, lower_bounds)
        if bounds is None:
            continue
        name, low, high = bounds
        if name in ranges:
            old_low, old_high = ranges[name]
            low = max(old_low, low, key=lambda b: (b[0], not b[1]))
            high = min(old_high, high, key=lambda b: (b[0], b[1]))
        ranges[name] = (low, high)
        if _empty(low, high):
            return True
    return False
