"""A question's candidate answers (the teacher's, the student's) and the pair records made from two of them.

A pair is a record: its input is the question's, plus the rejected completion under `REJECTED`
(runs/dataset.py); its rationale and answer are the chosen side's, so that a review edit of them edits
the chosen completion; its provenance ends with the pairs stage's entry (method, and for each side who
wrote it, which model, its answer and whether that reaches the gold answer).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from synthdistill.parsing import parse_rationale
from synthdistill.records import Provenance, Record, Sample, Verdict, stable_hash
from synthdistill.runs.dataset import REJECTED, is_pair, pair_texts
from synthdistill.scoring.scorer import Scorer
from synthdistill.student.prompts import response_text
from synthdistill.teachers.engine import ParseError


@dataclass(frozen=True)
class Candidate:
    """One answer to a question that may be one side of a pair."""

    text: str
    """The completion as the student would learn it (a teacher's: its rationale, then its answer line)."""
    rationale: str | None
    answer: str | None
    correct: bool | None
    """Whether its answer reaches the gold one; None when the question has no gold answer."""
    label: str
    """Who wrote it, for a reviewer: "teacher", "teacher sample 2", "student"."""
    model: str
    """The model that wrote it: backend/model, or the student's folder."""
    record: Record
    """The record it came from."""

    def side(self) -> dict[str, Any]:
        """What a pair's provenance says of this side."""
        return {"from": self.label, "model": self.model, "answer": self.answer, "correct": self.correct}


def by_question(records: Iterable[Record]) -> list[list[Record]]:
    """The records grouped by the question they answer (input.question, else the record they came from),
    in the order each question first appears."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        question = record.input.get("question")
        key = json.dumps(question, sort_keys=True) if question is not None else record.parent_id or record.id
        groups.setdefault(key, []).append(record)
    return list(groups.values())


def teacher_candidates(records: list[Record], scorer: Scorer) -> list[Candidate]:
    """The distinct answers of one question's records: each parsed sample of a record that has several
    (generate's), else the record's own rationale and answer (one a stage chose, such as self_consistency,
    with the review's edits applied)."""
    found: list[Candidate] = []
    seen: set[str] = set()
    for record in records:
        model = _writer(record)
        parsed = [(i, s) for i, s in enumerate(record.samples) if s.error is None]
        if len(parsed) > 1 or (parsed and not (record.rationale or record.answer is not None)):
            options = [
                (f"teacher sample {i}", s.fields.get("rationale"), s.fields.get("answer")) for i, s in parsed
            ]
        else:
            options = [("teacher", record.rationale, record.answer)]
        for label, rationale, answer in options:
            answer = None if answer is None else str(answer)
            text = response_text(record.model_copy(update={"rationale": rationale, "answer": answer}))
            if text.strip() and " ".join(text.split()) not in seen:
                seen.add(" ".join(text.split()))
                found.append(
                    Candidate(text, rationale, answer, _correct(answer, record, scorer), label, model, record)
                )
    return found


def student_candidate(record: Record, sample: Sample, model: str, scorer: Scorer) -> Candidate:
    """The student's answer to `record` as a candidate: its whole completion, read as the scorer reads one."""
    text = sample.text.strip()
    choices = record.input.get("choices")
    try:
        fields = parse_rationale(text, choices if isinstance(choices, list | dict) else None)
        rationale, answer = fields["rationale"], str(fields["answer"])
    except ParseError:
        # No answer line: the completion is kept as it is (a chosen side then learns it as written).
        rationale, answer = text, None
    read = scorer.read(text, record)
    correct = None if record.gold is None else read is not None and scorer.same(read, record.gold, record)
    return Candidate(text, rationale, answer, correct, "student", model, record)


def spread(first: int, second: int, limit: int) -> list[tuple[int, int]]:
    """Up to `limit` index pairs (i, j), i < first and j < second, each index used as evenly as it can be:
    (0, 0), (0, 1), (1, 0), (0, 2), (1, 1), ..."""
    combos = sorted(itertools.product(range(first), range(second)), key=lambda ij: (ij[0] + ij[1], ij[0]))
    return combos[:limit]


def make_pair(
    chosen: Candidate,
    rejected: Candidate,
    source_id: str,
    provenance: Provenance,
    *,
    verdicts: dict[str, Verdict] | None = None,
    samples: list[Sample] | None = None,
) -> Record:
    """The pair record of `chosen` over `rejected` (see the module's docstring)."""
    base = chosen.record
    return Record(
        id=stable_hash(base.id, chosen.text, rejected.text),
        parent_id=base.id,
        source_id=source_id,
        input={**base.input, REJECTED: rejected.text},
        rationale=chosen.rationale,
        answer=chosen.answer,
        agreement=base.agreement if chosen.label.startswith("teacher") else None,
        samples=samples or [],
        verdicts={**base.verdicts, **(verdicts or {})},
        provenance=[*base.provenance, provenance],
    )


def same_sides(pair: Record) -> bool:
    """Whether a pair's chosen and rejected completions are the same text (whitespace aside)."""
    return is_pair(pair) and pair_texts(pair) is None


def unpaired(records: list[Record], by: str, reason: str) -> Record:
    """A question that gave no pair: its first record, dropped with the reason (so a reviewer sees why)."""
    return records[0].drop(by, reason)


def _correct(answer: str | None, record: Record, scorer: Scorer) -> bool | None:
    if record.gold is None:
        return None
    return answer is not None and scorer.same(answer, record.gold, record)


def _writer(record: Record) -> str:
    """backend/model of the last stage that wrote the record's fields."""
    for entry in reversed(record.provenance):
        if entry.model:
            return f"{entry.teacher}/{entry.model}" if entry.teacher else entry.model
    return "unknown"
