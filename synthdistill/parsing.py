"""Reading answers out of completions: the final-answer line, number normalisation, rationales.

Critics, self-consistency and evaluation all use these, so that a record is judged the same way
wherever it is judged.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from synthdistill.teachers.engine import ParseError

# The explicit answer markers the shipped prompts teach, latest wins ("The answer is 12.", "#### 12").
_MARKERS = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|answer\s*[:=]|####)\s*[:\s]*\$?\s*(?P<answer>[^\n]*)",
    re.IGNORECASE,
)
# A connective left before the answer marker ("... So the answer is 12."): it belongs to the answer line.
_STUB = re.compile(r"(?:\b(?:so|therefore|thus|hence|then)\b[\s,:]*)+$", re.IGNORECASE)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+")
# A multiple-choice letter alone: "B", "(b)", "B.", "Option B", "answer (C)".
_LETTER = re.compile(r"(?:option|choice|answer)?\s*\(?(?P<letter>[A-Za-z])\)?[.:]?", re.IGNORECASE)
_LEADING_LETTER = re.compile(r"\(?(?P<letter>[A-Za-z])[).:]\s+\S")


def parse_rationale(text: str) -> dict[str, Any]:
    """Split a completion into `rationale` and normalised `answer`; raise ParseError without an answer."""
    matches = list(_MARKERS.finditer(text))
    if not matches:
        raise ParseError("no final answer line (expected 'The answer is ...')")
    last = matches[-1]
    answer = normalize_answer(last.group("answer"))
    if not answer:
        raise ParseError("the answer line is empty")
    rationale = _STUB.sub("", text[: last.start()].rstrip()).strip()
    return {"rationale": rationale, "answer": answer}


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


def choice_letter(value: Any, choices: list[str] | dict[str, str]) -> str | None:
    """The letter of a multiple-choice answer, given as a letter ("B", "(b)", "Option B") or as its text."""
    if isinstance(choices, dict):
        letters = {str(k).strip().upper(): str(v) for k, v in choices.items()}
    else:
        letters = {chr(ord("A") + i): str(text) for i, text in enumerate(choices)}
    text = str(value).strip()
    letter = _LETTER.fullmatch(text)
    if letter and letter.group("letter").upper() in letters:
        return letter.group("letter").upper()
    wanted = normalize_answer(text)
    for key, choice in letters.items():
        if normalize_answer(choice) == wanted:
            return key
    # "B) Paris" or "(B) Paris": the letter leads and its text follows.
    lead = _LEADING_LETTER.match(text)
    if lead and lead.group("letter").upper() in letters:
        return lead.group("letter").upper()
    return None


def _is_numeric_answer(text: str, number: str) -> bool:
    # "12 apples", "$5.00", "12." are numbers; "3 cats and 2 dogs" or "1990s music" are not.
    rest = text.replace(number, "", 1).strip().rstrip(".")
    return len(rest.split()) <= 2 and not _NUMBER.search(rest)
