"""The small rule language of stage models and features, with SQL's three-valued logic.

A rule is a Python-like expression: ``purchase_count >= 2 and is_advocate``. It is parsed once
into a tree of frozen nodes, type-checked against the names in scope, and then either evaluated
in Python (the reference implementation) or compiled to an Ibis expression (every engine). Both
follow SQL semantics: a comparison with an unknown (null) value is unknown, ``and``/``or``/
``not`` are three-valued, a rule fires only when it is true, and division by zero is unknown.

Grammar: literals (numbers, 'strings', true/false, null), names, ``properties.key`` (in event
filters), ``not``/``and``/``or``, one comparison per operand pair (``== != < <= > >=``),
``x in ('a', 'b')``, ``+ - * /``, and the functions ``known(x)`` and ``coalesce(x, y)``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Type = Literal["number", "bool", "string", "timestamp", "days"]
Scalar = int | float | str | bool | None


class ExpressionError(ValueError):
    """A problem in one expression; ``line`` counts from the expression's first line (1)."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Node:
    line: int


@dataclass(frozen=True)
class Lit(Node):
    value: Scalar


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Prop(Node):
    key: str


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: Literal["and", "or"]
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    values: tuple[Scalar, ...]
    negate: bool


@dataclass(frozen=True)
class Arith(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]


_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_FUNCTIONS = {"known": 1, "coalesce": 2}
_CONSTANTS: dict[str, Scalar] = {"true": True, "false": False, "null": None}


def parse(text: str) -> Node:
    """Parse one expression; raises ExpressionError with the line of the problem."""
    source = text.strip()
    if not source:
        raise ExpressionError("empty expression")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", exc.lineno or 1) from None
    return _convert(tree.body)


def _convert(node: ast.expr) -> Node:
    line = getattr(node, "lineno", 1)
    if isinstance(node, ast.Constant):
        if node.value is None or isinstance(node.value, bool | int | float | str):
            return Lit(line, node.value)
        raise ExpressionError(f"unsupported literal {node.value!r}", line)
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return Lit(line, _CONSTANTS[node.id])
        return Name(line, node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "properties":
            return Prop(line, node.attr)
        raise ExpressionError(f"unknown name '{node.value.id}.{node.attr}'", line)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return Not(line, _convert(node.operand))
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            value = node.operand.value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return Lit(line, -value)
        raise ExpressionError("unsupported unary operator", line)
    if isinstance(node, ast.BoolOp):
        op: Literal["and", "or"] = "and" if isinstance(node.op, ast.And) else "or"
        return BoolOp(line, op, tuple(_convert(v) for v in node.values))
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1:
            raise ExpressionError("chained comparisons are not supported; use 'and'", line)
        op_node, right = node.ops[0], node.comparators[0]
        if isinstance(op_node, ast.In | ast.NotIn):
            return _in_list(node.left, right, isinstance(op_node, ast.NotIn), line)
        if type(op_node) not in _CMP:
            raise ExpressionError("unsupported comparison", line)
        return Compare(line, _CMP[type(op_node)], _convert(node.left), _convert(right))
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        return Arith(line, _ARITH[type(node.op)], _convert(node.left), _convert(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        arity = _FUNCTIONS.get(node.func.id)
        if arity is None:
            raise ExpressionError(f"unknown function '{node.func.id}'", line)
        if len(node.args) != arity or node.keywords:
            raise ExpressionError(f"{node.func.id}() takes {arity} argument(s)", line)
        return Call(line, node.func.id, tuple(_convert(a) for a in node.args))
    raise ExpressionError(f"unsupported syntax: {ast.unparse(node)}", line)


def _in_list(left: ast.expr, right: ast.expr, negate: bool, line: int) -> InList:
    if not isinstance(right, ast.Tuple | ast.List | ast.Set):
        raise ExpressionError("'in' needs a list of literals: x in ('a', 'b')", line)
    values: list[Scalar] = []
    for element in right.elts:
        if not isinstance(element, ast.Constant) or not isinstance(
            element.value, int | float | str | bool | None
        ):
            raise ExpressionError("'in' needs a list of literals: x in ('a', 'b')", line)
        values.append(element.value)
    return InList(line, _convert(left), tuple(values), negate)


def names(node: Node) -> set[str]:
    """Every name an expression refers to."""
    if isinstance(node, Name):
        return {node.name}
    found: set[str] = set()
    for child in children(node):
        found |= names(child)
    return found


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, BoolOp):
        return node.operands
    if isinstance(node, Compare | Arith):
        return (node.left, node.right)
    if isinstance(node, InList):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    return ()


def literal_type(value: Scalar) -> Type | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


# --- evaluation in Python (the reference) -------------------------------------------------


def evaluate(
    node: Node, env: Mapping[str, Any], props: Mapping[str, Any] | None = None, want: str = "string"
) -> Any:
    """The value of ``node`` under SQL semantics; ``None`` is unknown.

    A property takes the type it is compared with (``want``): of another type, it is unknown.
    """
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Name):
        return env[node.name]
    if isinstance(node, Prop):
        return typed((props or {}).get(node.key), want)
    if isinstance(node, Not):
        value = evaluate(node.operand, env, props)
        return None if value is None else not value
    if isinstance(node, BoolOp):
        return _bool_op(node, env, props)
    if isinstance(node, Compare):
        left = evaluate(node.left, env, props, _prop_want(node.right))
        right = evaluate(node.right, env, props, _prop_want(node.left))
        return None if left is None or right is None else _compare(node.op, left, right)
    if isinstance(node, InList):
        value = evaluate(node.operand, env, props, _in_want(node.values))
        if value is None:
            return None
        return (value in node.values) != node.negate
    if isinstance(node, Arith):
        left = evaluate(node.left, env, props, "number")
        right = evaluate(node.right, env, props, "number")
        return _arith(node.op, left, right)
    if isinstance(node, Call):
        values = [evaluate(a, env, props) for a in node.args]
        if node.fn == "known":
            return values[0] is not None
        return values[0] if values[0] is not None else values[1]
    raise TypeError(node)


def typed(value: Any, want: str) -> Any:
    """``value`` if it is of the wanted JSON type (number or string), else unknown."""
    if want == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None
    return value if isinstance(value, str) else None


def _bool_op(node: BoolOp, env: Mapping[str, Any], props: Mapping[str, Any] | None) -> Any:
    values = [evaluate(v, env, props) for v in node.operands]
    decisive = node.op == "or"  # True decides an 'or', False decides an 'and'
    if any(v is not None and bool(v) == decisive for v in values):
        return decisive
    return None if any(v is None for v in values) else not decisive


def _compare(op: str, left: Any, right: Any) -> bool:
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: bool(a == b),
        "!=": lambda a, b: bool(a != b),
        "<": lambda a, b: bool(a < b),
        "<=": lambda a, b: bool(a <= b),
        ">": lambda a, b: bool(a > b),
        ">=": lambda a, b: bool(a >= b),
    }
    return comparisons[op](left, right)


def _arith(op: str, left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    return None if right == 0 else left / right


# --- compilation to Ibis (every engine) -----------------------------------------------------


def to_ibis(node: Node, resolve: Callable[[str], Any], prop: Callable[[str, str], Any]) -> Any:
    """The Ibis expression for ``node``; ``resolve`` gives columns for names."""
    import ibis

    def go(n: Node, want: str = "string") -> Any:
        if isinstance(n, Lit):
            return ibis.null() if n.value is None else ibis.literal(n.value)
        if isinstance(n, Name):
            return resolve(n.name)
        if isinstance(n, Prop):
            return prop(n.key, want)
        if isinstance(n, Not):
            return ~go(n.operand)
        if isinstance(n, BoolOp):
            result = go(n.operands[0])
            for operand in n.operands[1:]:
                result = (result & go(operand)) if n.op == "and" else (result | go(operand))
            return result
        if isinstance(n, Compare):
            left_want = _prop_want(n.right)
            right_want = _prop_want(n.left)
            return _ibis_compare(n.op, go(n.left, left_want), go(n.right, right_want))
        if isinstance(n, InList):
            return _ibis_in(go(n.operand, _in_want(n.values)), n.values, n.negate)
        if isinstance(n, Arith):
            left, right = go(n.left, "number"), go(n.right, "number")
            if n.op == "/":
                return ibis.ifelse(right == 0, ibis.null("float64"), left / right)
            return {"+": left + right, "-": left - right, "*": left * right}[n.op]
        if isinstance(n, Call):
            if n.fn == "known":
                return go(n.args[0]).notnull()
            return ibis.coalesce(go(n.args[0]), go(n.args[1]))
        raise TypeError(n)

    return go(node)


def _prop_want(other: Node) -> str:
    if isinstance(other, Lit) and literal_type(other.value) == "number":
        return "number"
    return "number" if isinstance(other, Arith) else "string"


def _in_want(values: tuple[Scalar, ...]) -> str:
    return "number" if any(literal_type(v) == "number" for v in values) else "string"


def _ibis_compare(op: str, left: Any, right: Any) -> Any:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _ibis_in(value: Any, values: tuple[Scalar, ...], negate: bool) -> Any:
    result = value.isin(list(values))
    return ~result if negate else result
