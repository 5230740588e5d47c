"""Reading answers out of completions: the final-answer line, number normalisation, rationales.

Critics, self-consistency and evaluation all use these, so that a record is judged the same way
wherever it is judged.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from synthdistill.engine import ParseError

# The explicit answer markers the shipped prompts teach, latest wins ("The answer is 12.", "#### 12").
_MARKERS = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|answer\s*[:=]|####)\s*[:\s]*\$?\s*(?P<answer>[^\n]*)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def parse_rationale(text: str) -> dict[str, Any]:
    """Split a completion into `rationale` and normalised `answer`; raise ParseError without an answer."""
    matches = list(_MARKERS.finditer(text))
    if not matches:
        raise ParseError("no final answer line (expected 'The answer is ...')")
    last = matches[-1]
    answer = normalize_answer(last.group("answer"))
    if not answer:
        raise ParseError("the answer line is empty")
    return {"rationale": text[: last.start()].strip(), "answer": answer}


def extract_answer(text: str) -> str | None:
    """The normalised final answer of a free-form completion: the marked one, else the last number."""
    try:
        return str(parse_rationale(text)["answer"])
    except ParseError:
        numbers = _NUMBER.findall(text)
        return normalize_answer(numbers[-1]) if numbers else None


def normalize_answer(value: Any) -> str:
    """A canonical form: numbers without commas, currency, units or trailing zeros; text lower-cased."""
    text = str(value).strip()
    number = _NUMBER.search(text)
    if number and _is_numeric_answer(text, number.group()):
        return normalize_number(number.group())
    return re.sub(r"[\s.!,;:]+$", "", text).strip().strip("\"'`*").lower()


def normalize_number(text: str) -> str:
    """'1,000' -> '1000', '$5.00' -> '5', '-0.50' -> '-0.5'; non-numbers come back stripped."""
    cleaned = text.replace(",", "").replace("$", "").strip()
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        return text.strip()
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def answers_match(predicted: str | None, gold: str | None, tolerance: float = 1e-6) -> bool:
    """Whether two answers agree after normalisation, numbers within a relative tolerance."""
    if predicted is None or gold is None:
        return False
    a, b = normalize_answer(predicted), normalize_answer(gold)
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= tolerance * max(1.0, abs(x), abs(y))


def _is_numeric_answer(text: str, number: str) -> bool:
    # "12 apples", "$5.00", "12." are numbers; "3 cats and 2 dogs" or "1990s music" are not.
    rest = text.replace(number, "", 1).strip().rstrip(".")
    return len(rest.split()) <= 2 and not _NUMBER.search(rest)
