"""The safe arithmetic evaluator: exact values, and hostile or runaway text refused with a reason."""

from __future__ import annotations

from fractions import Fraction

import pytest

from synthdistill.growth.expressions import ExpressionError, as_answer, evaluate


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12 * 7", 84),
        ("(12 + 7) * 3", 57),
        ("7 / 2", Fraction(7, 2)),
        ("0.1 + 0.2", Fraction(3, 10)),
        ("-3 + +5", 2),
        ("2 ** 10", 1024),
        ("17 // 5 + 17 % 5", 5),
        ("3 \u00d7 4 \u00f7 6", 2),
        ("2^3", 8),
    ],
)
def test_arithmetic_is_exact(text, value):
    assert evaluate(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os').system('true')", "only numbers"),
        ("x + 1", "only numbers"),
        ("(1).__class__", "only numbers"),
        ("[1, 2]", "only numbers"),
        ("'a' * 3", "only numbers"),
        ("9 ** 9 ** 9", "whole powers up to 12"),
        ("2 ** 0.5", "whole powers"),
        ("1 / 0", "divides by zero"),
        ("10 ** 12 * 10 ** 12", "beyond"),
        ("1e999 - 1", "beyond"),
        ("1 +", "not an arithmetic expression"),
        ("", "empty"),
        ("1" + " + 1" * 200, "characters long"),
        ("-" * 30 + "1", "nests deeper"),
        ("1 < 2", "only numbers"),
        ("True + 1", "only numbers"),
    ],
)
def test_anything_but_bounded_arithmetic_is_refused_with_a_reason(text, reason):
    with pytest.raises(ExpressionError, match=reason):
        evaluate(text)


def test_answers_are_integers_or_short_decimals():
    assert as_answer(Fraction(84)) == "84"
    assert as_answer(Fraction(7, 2)) == "3.5"
    assert as_answer(Fraction(1, 3)) == "0.3333"
    assert as_answer(Fraction(-5)) == "-5"
