"""Arithmetic expressions written by a teacher, evaluated safely: a parsed syntax tree, never eval or exec.

A teacher that writes a new word problem also writes the expression that solves it ("(12 + 7) * 3"), so
the gold answer of a generated problem is checked by arithmetic rather than trusted. `evaluate` parses
the text with Python's own parser (`ast.parse(mode="eval")`) and walks the tree itself, allowing only
numbers, + - * / // % **, unary signs and parentheses, with bounds on size, depth and powers, so hostile
or runaway text ("9**9**9", "__import__('os')") is refused with a reason instead of run.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from fractions import Fraction

from synthdistill.errors import SynthdistillError

MAX_LENGTH = 200
"""Longest expression accepted, in characters."""
MAX_DEPTH = 20
"""Deepest nesting of operations accepted."""
MAX_EXPONENT = 12
"""Largest power accepted (word problems need squares and cubes, not towers)."""
MAX_MAGNITUDE = 10**15
"""Largest absolute value of any intermediate result."""


class ExpressionError(SynthdistillError):
    """An expression that is not plain arithmetic, or whose value is out of bounds."""


def evaluate(text: str) -> Fraction:
    """The exact value of an arithmetic expression (fractions stay exact: "7 / 2" is 7/2)."""
    # The multiplication and division signs, and ^ for powers, as teachers often write them.
    text = text.strip().replace("\u00d7", "*").replace("\u00f7", "/").replace("^", "**")
    if not text:
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"the expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ExpressionError(f"{text!r} is not an arithmetic expression") from None
    return _value(tree.body, text, 0)


def as_answer(value: Fraction) -> str:
    """A value written as an answer: an integer, or a decimal rounded to 4 places."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.4f}".rstrip("0").rstrip(".")


_BINARY: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: lambda a, b: Fraction(a // b),
    ast.Mod: operator.mod,
}


def _value(node: ast.AST, text: str, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"{text!r} nests deeper than {MAX_DEPTH} operations")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ExpressionError(f"{text!r} reaches a value beyond {MAX_MAGNITUDE:.0e}")
        # From the decimal as written (repr is the shortest round trip), so 0.1 is 1/10, not a binary float.
        return _bounded(Fraction(repr(node.value)), text)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        inner = _value(node.operand, text, depth + 1)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        left = _value(node.left, text, depth + 1)
        right = _value(node.right, text, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _power(left, right, text)
        function = _BINARY.get(type(node.op))
        if function is None:
            raise ExpressionError(f"{text!r} uses an operator that is not arithmetic")
        if right == 0 and isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod):
            raise ExpressionError(f"{text!r} divides by zero")
        return _bounded(function(left, right), text)
    raise ExpressionError(
        f"{text!r} holds {type(node).__name__.lower()} {ast.unparse(node)!r}; only numbers, "
        "+ - * / // % ** and parentheses are allowed"
    )


def _power(base: Fraction, exponent: Fraction, text: str) -> Fraction:
    if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
        raise ExpressionError(
            f"{text!r} raises to {exponent}; only whole powers up to {MAX_EXPONENT} are allowed"
        )
    if base == 0 and exponent < 0:
        raise ExpressionError(f"{text!r} divides by zero")
    return _bounded(base ** int(exponent), text)


def _bounded(value: Fraction, text: str) -> Fraction:
    if abs(value) > MAX_MAGNITUDE:
        raise ExpressionError(f"{text!r} reaches a value beyond {MAX_MAGNITUDE:.0e}")
    return value
