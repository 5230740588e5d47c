"""Reading answers out of completions: the final-answer line, numbers, choices, labels, rationales, programs.

The primitives of each task type's reading; `scoring/` decides which applies to a record and compares
answers, so that critics, self-consistency and evaluation judge a record the same way wherever it is
judged. A program of thought is read in two steps: `parse_program` takes the fenced ```python block out
of a completion, and `run_sample_programs` runs it in the sandbox, whose answer is the last line the
program prints.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from synthdistill.records import Sample
from synthdistill.sandbox import Limits, run_programs
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
_LEADING_LETTER = re.compile(r"\(?(?P<letter>[A-Za-z])[).:]\s+(?P<text>\S.*)", re.DOTALL)
# Punctuation that folding removes: anything but letters, digits and spaces, except a point or comma
# inside a number ("3.5", "1,000").
_PUNCTUATION = re.compile(r"(?!(?<=\d)[.,](?=\d))[^\w\s]|_")
_ARTICLE = re.compile(r"^(?:(?:a|an|the)\s+)+")
# A fenced program: ```python (or ```py) on its own line, the code, then ``` closing it.
_FENCE = r"```[ \t]*(?:python3?|py)[ \t]*\n"
_PROGRAM = re.compile(_FENCE + r"(?P<code>.*?)```", re.DOTALL | re.IGNORECASE)
_OPENED = re.compile(_FENCE, re.IGNORECASE)


def parse_rationale(text: str, choices: list[Any] | dict[str, Any] | None = None) -> dict[str, Any]:
    """Split a completion into `rationale` and normalised `answer`; raise ParseError without an answer.

    With the item's `choices`, an answer that names one ("(e) house", "E", "House") is that choice's text
    ("house"); one that names none stays as written.
    """
    matches = list(_MARKERS.finditer(text))
    if not matches:
        raise ParseError("no final answer line (expected 'The answer is ...')")
    last = matches[-1]
    answer = normalize_answer(last.group("answer"))
    if not answer:
        raise ParseError("the answer line is empty")
    if choices:
        answer = choice_text(last.group("answer"), choices) or answer
    rationale = _STUB.sub("", text[: last.start()].rstrip()).strip()
    return {"rationale": rationale, "answer": answer}


def answer_line(text: str) -> str | None:
    """What the last answer marker of `text` says ("(e) house." of "So the answer is (e) house."), or None."""
    matches = list(_MARKERS.finditer(text))
    if not matches:
        return None
    return matches[-1].group("answer").strip() or None


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


def fold(text: Any, articles: bool = False) -> str:
    """Text as compared: lower case, punctuation gone (not a number's point or comma), spaces collapsed;
    with `articles`, a leading "a", "an" or "the" goes too."""
    folded = " ".join(_PUNCTUATION.sub(" ", str(text).lower()).split())
    return _ARTICLE.sub("", folded) if articles else folded


def choice_map(choices: list[Any] | dict[str, Any]) -> dict[str, str]:
    """Letter -> text of a `choices` list (lettered A, B, ...) or {letter: text} mapping."""
    if isinstance(choices, dict):
        return {str(k).strip().upper(): str(v) for k, v in choices.items()}
    return {chr(ord("A") + i): str(text) for i, text in enumerate(choices)}


def choice_letter(value: Any, choices: list[Any] | dict[str, Any]) -> str | None:
    """The letter of a multiple-choice answer: a letter ("B", "(b)", "Option B"), its text ("paris"), the
    two together ("(b) Paris"; the text decides where the two disagree), or a phrase holding one choice."""
    letters = choice_map(choices)
    text = str(value).strip()
    letter = _LETTER.fullmatch(text)
    if letter and letter.group("letter").upper() in letters:
        return letter.group("letter").upper()
    named = _named_choice(text, letters)
    if named:
        return named
    # "B) Paris" or "(B) Paris": the letter leads and its text follows.
    lead = _LEADING_LETTER.match(text)
    if lead and lead.group("letter").upper() in letters:
        return _named_choice(lead.group("text"), letters) or lead.group("letter").upper()
    return _mentioned_choice(text, letters)


def choice_text(value: Any, choices: list[Any] | dict[str, Any]) -> str | None:
    """The text of the choice a multiple-choice answer names (see `choice_letter`), or None."""
    letter = choice_letter(value, choices)
    return choice_map(choices)[letter].strip() if letter else None


def label_of(value: Any, vocabulary: dict[str, str]) -> str | None:
    """The label an answer names, given `vocabulary` (folded word or synonym -> label): the whole answer,
    its first words ("neutral, since ..."), or the only label it mentions; None for none or several."""
    text = fold(value, articles=True)
    if text in vocabulary:
        return vocabulary[text]
    words = sorted(vocabulary, key=len, reverse=True)
    for word in words:
        # "neutral, since ..." but not "neutral or entailment".
        if text.startswith(word + " ") and not re.match(r"(?:or|and)\b", text[len(word) + 1 :]):
            return vocabulary[word]
    found = {vocabulary[word] for word in words if re.search(rf"\b{re.escape(word)}\b", text)}
    return found.pop() if len(found) == 1 else None


def is_number(value: Any) -> bool:
    """Whether an answer reads as a number ("12", "$1,250.00", "7 apples"), as `normalize_answer` reads it."""
    text = str(value).strip()
    number = _NUMBER.search(text)
    return number is not None and _is_numeric_answer(text, number.group())


def parse_program(text: str) -> dict[str, Any]:
    """The first fenced Python block of a completion as `program` and, fenced, as `rationale`; raise
    ParseError without one. An answer stated after the block ("The answer is 12.") is `stated_answer`."""
    match = _PROGRAM.search(text)
    if match is None:
        if _OPENED.search(text):
            raise ParseError("the ```python block is not closed (cut off by max_tokens?)")
        raise ParseError("no program (expected a ```python block)")
    code = match.group("code").strip("\n").rstrip()
    if not code.strip():
        raise ParseError("the ```python block is empty")
    fields: dict[str, Any] = {"program": code, "rationale": fenced_program(code)}
    stated = answer_line(text[match.end() :])
    if stated:
        fields["stated_answer"] = normalize_answer(stated)
    return fields


def fenced_program(code: str) -> str:
    """A program as a fenced block, the form a program-of-thought rationale takes."""
    return f"```python\n{code}\n```"


def program_of(text: str) -> str | None:
    """The code of the first fenced Python block of `text`, or None."""
    match = _PROGRAM.search(text)
    return match.group("code").strip("\n").rstrip() if match else None


def run_sample_programs(
    samples: list[Sample], limits: Limits | None = None, workers: int | None = None
) -> list[Sample]:
    """Run each parsed sample's program in the sandbox, side by side: its `answer` is what it printed
    last; a program that fails, or prints other than the answer the text states, fails its sample."""
    runnable = [i for i, sample in enumerate(samples) if sample.error is None and "program" in sample.fields]
    results = run_programs([str(samples[i].fields["program"]) for i in runnable], limits, workers)
    done = list(samples)
    for i, result in zip(runnable, results, strict=True):
        sample = samples[i]
        if not result.ok or result.answer is None:
            done[i] = sample.model_copy(update={"error": f"program failed: {result.reason}"})
            continue
        answer = normalize_answer(result.answer)
        stated = sample.fields.get("stated_answer")
        if stated is not None and not answers_match(answer, stated):
            error = f"the program printed {answer}, but the text says {stated}"
            done[i] = sample.model_copy(update={"error": error})
            continue
        done[i] = sample.model_copy(update={"fields": {**sample.fields, "answer": answer}})
    return done


def _named_choice(text: str, letters: dict[str, str]) -> str | None:
    """The first letter whose text is `text`, ignoring case, punctuation and a leading article."""
    wanted = fold(text, articles=True)
    return next((key for key, choice in letters.items() if fold(choice, articles=True) == wanted), None)


def _mentioned_choice(text: str, letters: dict[str, str]) -> str | None:
    """The letter of the one choice whose words `text` holds ("the garden, surely"), ignoring a choice held
    inside a longer one that is also there ("river bank" over "bank"); None for none or several (also
    by letter: "either (a) pond or (e) creek")."""
    # "either (a) pond or (e) creek" names two.
    if len({m.upper() for m in re.findall(r"\(([A-Za-z])\)", text)} & set(letters)) > 1:
        return None
    folded = f" {fold(text)} "
    found = {fold(c, articles=True) for c in letters.values() if f" {fold(c, articles=True)} " in folded}
    found.discard("")
    longest = {c for c in found if not any(c != other and f" {c} " in f" {other} " for other in found)}
    if len(longest) != 1:
        return None
    (only,) = longest
    return _named_choice(only, letters)


def _is_numeric_answer(text: str, number: str) -> bool:
    # "12 apples", "$5.00", "12." are numbers; "3 cats and 2 dogs", "1990s music" or a lettered choice
    # ("(b) number 1") are not.
    rest = text.replace(number, "", 1).strip().rstrip(".")
    return len(rest.split()) <= 2 and not _NUMBER.search(rest) and not _LEADING_LETTER.match(text)
