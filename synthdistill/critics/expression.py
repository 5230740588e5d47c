"""expression: a generated arithmetic problem's expression evaluates, fits the problem, and gives its gold.

A teacher that writes a new word problem also writes the expression that solves it (the adversarial
stage's lion_*_arith.j2 templates); its value, computed by the restricted evaluator of expressions.py
(a parsed syntax tree, never eval), is the problem's gold answer. This critic checks that the gold can
be trusted: the expression evaluates, every number it uses appears in the problem (so it solves this
problem and not another), the value is whole and not negative where word problems want that, and the
stored gold is that value.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.errors import CriticError
from synthdistill.growth.expressions import ExpressionError, as_answer, evaluate
from synthdistill.parsing import answers_match, normalize_number
from synthdistill.records import Record, Verdict

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


class Expression(BaseCritic):
    """Passes a record whose arithmetic expression evaluates to its gold and uses the problem's numbers."""

    name = "expression"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field("input.expression", description="Field holding the expression.")
        question_field: str = Field("input.question", description="Field holding the problem's text.")
        gold_field: str = Field("input.answer", description="Field holding the gold answer to check.")
        grounded: bool = Field(
            True, description="Whether every number of the expression must appear in the problem."
        )
        integer: bool = Field(True, description="Whether the value must be a whole number.")
        nonnegative: bool = Field(True, description="Whether the value must be zero or more.")

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Evaluate each record's expression and check it against its problem and gold."""
        return [self._judge(record) for record in records]

    def _judge(self, record: Record) -> Verdict:
        written = _text(record, self.options.field)
        if not written:
            return Verdict(passed=False, reason="no expression")
        try:
            value = evaluate(written)
        except ExpressionError as exc:
            return Verdict(passed=False, reason=str(exc))
        answer = as_answer(value)
        if self.options.integer and value.denominator != 1:
            return Verdict(passed=False, reason=f"{written} = {answer}, not a whole number")
        if self.options.nonnegative and value < 0:
            return Verdict(passed=False, reason=f"{written} = {answer}, below zero")
        if self.options.grounded:
            problem = {
                normalize_number(n) for n in _NUMBER.findall(_text(record, self.options.question_field))
            }
            foreign = [n for n in _NUMBER.findall(written) if normalize_number(n) not in problem]
            if foreign:
                return Verdict(
                    passed=False, reason=f"{written} uses {', '.join(foreign)}, not in the problem"
                )
        gold = _text(record, self.options.gold_field)
        if gold and not answers_match(answer, gold):
            return Verdict(passed=False, reason=f"{written} = {answer}, but the gold answer is {gold}")
        return Verdict(score=1.0, passed=True, reason=f"{written} = {answer}")


def _text(record: Record, field: str) -> str:
    # A record without the field (an original item without an expression) fails the check, not the run.
    try:
        return field_text(record, field).strip()
    except CriticError:
        return ""
