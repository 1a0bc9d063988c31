"""Expressions over whole NumPy columns, with SQL's three-valued logic.

A column is a value array and a "known" mask (SQL's null): ``and``/``or`` follow SQL (false and
unknown is false, true or unknown is true), comparisons and arithmetic with an unknown side are
unknown, division by zero is unknown. Strings are compared as codes into one sorted list, so a
string literal that no event carries falls between the codes around it and still compares
right. ``expressions.evaluate`` is the same logic one value at a time (the reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clm.lifecycle.expressions import (
    Arith,
    BoolOp,
    Call,
    Compare,
    InList,
    Lit,
    Name,
    Node,
    Not,
    Scalar,
)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Column:
    """Values (float64; true/false as 1/0, strings as sorted codes) and where they are known."""

    data: Floats
    known: Bools

    def fires(self) -> Bools:
        result: Bools = self.known & (self.data != 0)
        return result


def _literal(value: Scalar, strings: list[str]) -> float:
    """A literal as a column value; an unseen string falls between the codes around it."""
    if isinstance(value, str):
        at = int(np.searchsorted(np.asarray(strings, dtype=object), value)) if strings else 0
        return float(at) if at < len(strings) and strings[at] == value else at - 0.5
    return float(value) if value is not None else 0.0


def evaluate(node: Node, env: Mapping[str, Column], strings: list[str], size: int) -> Column:
    """``node`` over whole columns, with SQL's null semantics (see ``expressions.evaluate``)."""

    def go(n: Node) -> Column:
        if isinstance(n, Lit):
            known = np.full(size, n.value is not None)
            return Column(np.full(size, _literal(n.value, strings)), known)
        if isinstance(n, Name):
            return env[n.name]
        if isinstance(n, Not):
            inner = go(n.operand)
            return Column((inner.data == 0).astype(np.float64), inner.known)
        if isinstance(n, BoolOp):
            parts = [go(o) for o in n.operands]
            true = [p.known & (p.data != 0) for p in parts]
            false = [p.known & (p.data == 0) for p in parts]
            if n.op == "and":
                all_true, any_false = np.logical_and.reduce(true), np.logical_or.reduce(false)
                return Column(all_true.astype(np.float64), all_true | any_false)
            any_true, all_false = np.logical_or.reduce(true), np.logical_and.reduce(false)
            return Column(any_true.astype(np.float64), any_true | all_false)
        if isinstance(n, Compare):
            left, right = go(n.left), go(n.right)
            data = _COMPARE[n.op](left.data, right.data).astype(np.float64)
            return Column(data, left.known & right.known)
        if isinstance(n, InList):
            inner = go(n.operand)
            wanted = [_literal(v, strings) for v in n.values]
            found = np.isin(inner.data, wanted) != n.negate
            return Column(found.astype(np.float64), inner.known)
        if isinstance(n, Arith):
            left, right = go(n.left), go(n.right)
            known = left.known & right.known
            if n.op == "/":
                known = known & (right.data != 0)
                data = np.divide(left.data, np.where(right.data == 0, 1.0, right.data))
            else:
                data = _ARITH[n.op](left.data, right.data)
            return Column(data, known)
        if isinstance(n, Call):
            first = go(n.args[0])
            if n.fn == "known":
                return Column(first.known.astype(np.float64), np.ones(size, dtype=np.bool_))
            second = go(n.args[1])
            return Column(
                np.where(first.known, first.data, second.data), first.known | second.known
            )
        raise TypeError(n)

    with np.errstate(all="ignore"):
        return go(node)


_COMPARE = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply}
