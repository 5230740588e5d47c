"""answer_rationale_consistency: the rationale's own last statement reaches the answer it claims.

A rationale that ends "so 7 + 5 = 12." and then answers 12 is consistent; one that computes 15 and
answers 12, or lands on the number by a wrong sum ("7 + 5 = 13"), is not. Rationalised samples (the
gold answer given as a hint) often merely land on the hinted number (LAB.md): this critic catches the
cheap half of that, a teacher judge the rest.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.parsing import answers_match, normalize_answer, normalize_number
from synthdistill.records import Record, Verdict

# Commas only between digit groups, so "= 30, so" reads 30.
_NUMBER = r"-?\$?\d+(?:,\d{3})*(?:\.\d+)?"
_OP = "[-+*/x\u00d7\u00f7]"  # x, the multiplication sign and the division sign too
# A chain of numbers and operators equal to a number: "5 + 3 = 8", "2 * 3 + 1 = 7".
_EQUATION = re.compile(rf"(?P<left>{_NUMBER}(?:\s*{_OP}\s*{_NUMBER})+)\s*=\s*(?P<right>{_NUMBER})")
_PYTHON_OPS = {"x": "*", "\u00d7": "*", "\u00f7": "/"}
_OPERAND = re.compile(rf"{_NUMBER}|{_OP}")
# Sentence ends: a full stop, ! or ? followed by space, or a line break (not the point of 1.5).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class AnswerRationaleConsistency(BaseCritic):
    """Passes a record whose rationale's final statement states its answer (and whose sums are right)."""

    name = "answer_rationale_consistency"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field("rationale", description="Field holding the rationale.")
        answer_field: str = Field("answer", description="Field holding the parsed answer.")
        check_arithmetic: bool = Field(
            True, description="Whether every 'a op b = c' in the rationale must be arithmetically right."
        )
        tolerance: float = Field(1e-6, ge=0.0, description="Relative tolerance for numeric comparisons.")

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Read each rationale's last statement and compare it with the answer."""
        return [
            check_consistency(
                field_text(record, self.options.field),
                field_text(record, self.options.answer_field),
                self.options.check_arithmetic,
                self.options.tolerance,
            )
            for record in records
        ]


def check_consistency(
    rationale: str, answer: str, check_arithmetic: bool = True, tolerance: float = 1e-6
) -> Verdict:
    """The verdict on one rationale and answer (used by self_consistency for rationalised samples too)."""
    statements = [s for s in _SENTENCE_END.split(rationale.strip()) if s.strip()]
    if not statements:
        return Verdict(score=0.0, passed=False, reason="no rationale")
    if check_arithmetic:
        for equation in _EQUATION.finditer(rationale):
            # Part of a longer expression ("(5 + 3) * 2 = 16"): not read, rather than misread.
            before = rationale[: equation.start()].rstrip()[-1:]
            if before and before in "()-+*/x\u00d7\u00f7":
                continue
            if not _holds(equation, tolerance):
                return Verdict(score=0.0, passed=False, reason=f"wrong arithmetic: {equation.group()!r}")
    final = statements[-1]
    normal = normalize_answer(answer)
    if re.fullmatch(r"-?\d+(?:\.\d+)?", normal):
        numbers = re.findall(_NUMBER, final)
        if not numbers:
            return Verdict(score=0.0, passed=False, reason=f"final statement states no number: {final!r}")
        stated = normalize_number(numbers[-1])
        if not answers_match(stated, normal, tolerance):
            return Verdict(
                score=0.0, passed=False, reason=f"final statement reaches {stated}, answer is {normal}"
            )
        return Verdict(score=1.0, passed=True, reason=f"final statement reaches {stated}")
    if normal and normal in normalize_answer(final):
        return Verdict(score=1.0, passed=True, reason="final statement states the answer")
    return Verdict(score=0.0, passed=False, reason=f"final statement does not state {normal!r}")


def _holds(equation: re.Match[str], tolerance: float) -> bool:
    """Whether the left side evaluates to the right (operators by precedence, numbers normalised)."""
    import ast

    tokens = _OPERAND.findall(equation.group("left"))
    expression = " ".join(
        _PYTHON_OPS.get(t, t) if len(t) == 1 and not t.isdigit() else normalize_number(t) for t in tokens
    )
    try:
        value = _evaluate(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ZeroDivisionError, ValueError):
        return False
    right = float(normalize_number(equation.group("right")))
    # Rationales round divisions to cents ("10 / 3 = 3.33"): allow half a cent when there is one.
    slack = 0.005 if "/" in expression else 0.0
    return abs(value - right) <= max(tolerance * max(1.0, abs(value), abs(right)), slack)


def _evaluate(node: object) -> float:
    import ast
    import operator

    operators = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Div: operator.truediv,
    }
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in operators:
        return operators[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")
