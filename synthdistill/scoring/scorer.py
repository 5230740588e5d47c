"""The scorer: a record's task type, an answer's canonical form, a completion's answer, and the verdict
on an answer against the gold one.

The answer_match critic, self_consistency's vote, evaluate's accuracy and the adversarial discriminate
step all go through one `Scorer`, so a filter and an evaluation never disagree about one answer. Each
task type reads and compares answers its own way (a `_Kind`, found by type in `_KINDS`):

| type | canonical form | same answer when |
| --- | --- | --- |
| number | the number without commas, currency, units or trailing zeros | equal within the tolerance |
| choice | the text of the choice named by letter, by text or as "(c) text" | the same choice text |
| label | the label named, or named by a declared synonym | the same label |
| text | lower case, spaces collapsed, final punctuation gone | equal with punctuation gone too |
| triple | the tail, its list number gone | equal without punctuation, articles or a leading "to" |
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from synthdistill.parsing import (
    answer_line,
    answers_match,
    choice_text,
    extract_answer,
    fold,
    is_number,
    label_of,
    normalize_answer,
)
from synthdistill.records import Record, Verdict
from synthdistill.scoring.task import KNOWN_LABELS, TaskConfig, TaskType

_RECORD_GOLD: Any = object()
"""The default of `Scorer.judge`'s gold: the record's own gold answer."""


class Scorer:
    """Reads and compares the answers of a pipeline's task (its `data.task`, inferred where not declared)."""

    def __init__(self, task: TaskConfig | None = None) -> None:
        self.task = task or TaskConfig()

    def type_of(self, record: Record) -> TaskType:
        """The record's task type: the declared one, else inferred from its input and gold answer."""
        if self.task.type is not None:
            return self.task.type
        if _choices(record, self.task):
            return "choice"
        if self.task.labels:
            return "label"
        if "head" in record.input and "relation" in record.input:
            return "triple"
        gold = record.gold
        if gold is None or is_number(gold):
            return "number"
        return "label" if _known_set(gold) else "text"

    def canonical(self, answer: Any, record: Record) -> str | None:
        """The answer in its type's canonical form (what votes count), or None when it names no valid
        answer (no choice of the item, no label of the task)."""
        if answer is None:
            return None
        kind, item = self._kind(record)
        return kind.canonical(str(answer), item)

    def key(self, answer: Any, record: Record) -> str | None:
        """What two agreeing answers share, for counting votes: the canonical form, folded for text."""
        kind, item = self._kind(record)
        canonical = kind.canonical(str(answer), item) if answer is not None else None
        return None if canonical is None else kind.key(canonical)

    def same(self, a: Any, b: Any, record: Record) -> bool:
        """Whether two answers to `record` agree (numbers within the tolerance)."""
        kind, item = self._kind(record)
        x = kind.canonical(str(a), item) if a is not None else None
        y = kind.canonical(str(b), item) if b is not None else None
        return x is not None and y is not None and kind.same(x, y, item)

    def read(self, text: str, record: Record) -> str | None:
        """The canonical answer of a whole completion: its answer line, else what its type finds in it."""
        kind, item = self._kind(record)
        return kind.read(text, item)

    def judge(self, predicted: Any, record: Record, gold: Any = _RECORD_GOLD) -> Verdict:
        """The verdict on `predicted` against the gold answer (the record's unless `gold` is given)."""
        gold = record.gold if gold is _RECORD_GOLD else gold
        kind, item = self._kind(record)
        got = kind.canonical(str(predicted), item) if predicted is not None else None
        want = kind.canonical(str(gold), item) if gold is not None else None
        ok = got is not None and want is not None and kind.same(got, want, item)
        if ok:
            return Verdict(score=1.0, passed=True, reason="matches gold")
        reason = f"answer {predicted!r} != gold {gold!r}"
        if item.type != "number":
            reason += f" (as {item.type}: {got!r} vs {want!r})"
        return Verdict(score=0.0, passed=False, reason=reason)

    def describe(self, records: list[Record]) -> str:
        """The scoring used on `records`: one type's name ("choice"), or each type with its count."""
        counts = Counter(self.type_of(record) for record in records)
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(
            f"{name} {count}" for name, count in sorted(counts.items(), key=lambda p: (-p[1], p[0]))
        )

    def _vocabulary(self, record: Record) -> dict[str, str]:
        """Folded label or synonym -> label, for a label task's record."""
        labels = self.task.labels or _known_set(record.gold) or [w for group in KNOWN_LABELS for w in group]
        words = {fold(label, articles=True): label for label in labels}
        for label, synonyms in self.task.synonyms.items():
            if label in labels:
                words.update({fold(synonym, articles=True): label for synonym in synonyms})
        return words

    def _kind(self, record: Record) -> tuple[_Kind, _Item]:
        kind = self.type_of(record)
        vocabulary = self._vocabulary(record) if kind == "label" else {}
        item = _Item(kind, self.task, _choices(record, self.task), vocabulary)
        return _KINDS[kind], item


@dataclass(frozen=True)
class _Item:
    """What a kind needs of one record: its type, the task, its choices and its labels."""

    type: TaskType
    task: TaskConfig
    choices: list[Any] | dict[str, Any] | None
    vocabulary: dict[str, str]


class _Kind:
    """How one task type reads and compares answers; the base compares canonical forms by `key`."""

    def canonical(self, value: str, item: _Item) -> str | None:
        raise NotImplementedError

    def key(self, canonical: str) -> str:
        return canonical

    def same(self, a: str, b: str, item: _Item) -> bool:
        return self.key(a) == self.key(b)

    def read(self, text: str, item: _Item) -> str | None:
        line = answer_line(text)
        return self.canonical(line if line is not None else text.strip(), item)


class _Number(_Kind):
    def canonical(self, value: str, item: _Item) -> str | None:
        return normalize_answer(value) or None

    def same(self, a: str, b: str, item: _Item) -> bool:
        return answers_match(a, b, item.task.tolerance)

    def read(self, text: str, item: _Item) -> str | None:
        # The marked answer, else the last number of the completion.
        return extract_answer(text)


class _Choice(_Kind):
    def canonical(self, value: str, item: _Item) -> str | None:
        return choice_text(value, item.choices) if item.choices else None

    def key(self, canonical: str) -> str:
        return fold(canonical, articles=True)

    def read(self, text: str, item: _Item) -> str | None:
        # Without an answer line: the whole reply ("(c) garden"), else its last line.
        line = answer_line(text)
        if line is not None:
            return self.canonical(line, item)
        return self.canonical(text.strip(), item) or self.canonical(_last_line(text), item)


class _Label(_Kind):
    def canonical(self, value: str, item: _Item) -> str | None:
        return label_of(value, item.vocabulary)

    def read(self, text: str, item: _Item) -> str | None:
        line = answer_line(text)
        if line is not None:
            return self.canonical(line, item)
        return self.canonical(_last_line(text), item) or self.canonical(text, item)


class _Text(_Kind):
    def canonical(self, value: str, item: _Item) -> str | None:
        text = re.sub(r"[\s.!,;:]+$", "", " ".join(value.split())).strip("\"'`* ").lower()
        return text or None

    def key(self, canonical: str) -> str:
        return fold(canonical)


class _Triple(_Text):
    def canonical(self, value: str, item: _Item) -> str | None:
        return super().canonical(re.sub(r"^\s*(?:\d+[.)]|[-*])\s+", "", value), item)

    def key(self, canonical: str) -> str:
        return re.sub(r"^to ", "", fold(canonical, articles=True))

    def read(self, text: str, item: _Item) -> str | None:
        line = answer_line(text)
        first = next((part for part in text.splitlines() if part.strip()), "")
        return self.canonical(line if line is not None else first, item)


_KINDS: dict[TaskType, _Kind] = {
    "number": _Number(),
    "choice": _Choice(),
    "label": _Label(),
    "text": _Text(),
    "triple": _Triple(),
}


def _choices(record: Record, task: TaskConfig) -> list[Any] | dict[str, Any] | None:
    value = record.input.get(task.choices_field)
    return value if isinstance(value, list | dict) and value else None


def _known_set(gold: Any) -> list[str] | None:
    """The known label set (NLI, yes/no) holding `gold`, or None."""
    if gold is None:
        return None
    word = fold(gold, articles=True)
    return next((list(group) for group in KNOWN_LABELS if word in group), None)


def _last_line(text: str) -> str:
    return next((line for line in reversed(text.splitlines()) if line.strip()), "")
