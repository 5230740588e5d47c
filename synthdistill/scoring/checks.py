"""What preflight refuses in a task's data before anything is spent: answers that cannot be scored.

A `choices` field of the wrong shape, a gold answer that is none of its item's choices, a gold label
outside the task's labels, and items that do not fit a declared type are counted over the whole data and
reported with the first example, rather than kept and silently scored wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthdistill.parsing import is_number
from synthdistill.records import Record
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig


def data_problem(records: list[Record], task: TaskConfig) -> tuple[str, str] | None:
    """(key, message) of the first kind of item that cannot be scored, with its count, or None."""
    scorer = Scorer(task)
    field = task.choices_field
    checks: list[tuple[str, str, Callable[[Record], bool], str]] = [
        (
            f"data.fields.{field}",
            f"have a `{field}` field that is not a list of at least two texts or a {{letter: text}} mapping",
            lambda r: field in r.input and _shape_problem(r.input[field]) is not None,
            f"give each item's `{field}` as a list or a {{letter: text}} mapping (or map another column to "
            f"it in data.fields)",
        ),
        (
            "data.task.type",
            f"have no `{field}` for a choice task",
            lambda r: task.type == "choice" and not r.input.get(field),
            f"map the options to `{field}` in data.fields, or declare another data.task.type",
        ),
        (
            "data.fields.answer",
            "have a gold answer that is none of their choices",
            lambda r: _gold_unscorable(scorer, r, "choice"),
            "fix those items' answers (by letter or by the choice's text) or leave the items out",
        ),
        (
            "data.task.labels",
            "have a gold label that is none of the task's labels",
            lambda r: _gold_unscorable(scorer, r, "label"),
            "add the label (or a synonym for it) to data.task, or fix those items' answers",
        ),
        (
            "data.task.type",
            "have a gold answer that is not a number, for a number task",
            lambda r: task.type == "number" and r.gold is not None and not is_number(r.gold),
            "declare another data.task.type (text, label, ...) or fix those items' answers",
        ),
        (
            "data.task.type",
            "have no `head` and `relation`, for a triple task",
            lambda r: task.type == "triple" and not {"head", "relation"} <= set(r.input),
            "map head and relation in data.fields, or declare another data.task.type",
        ),
    ]
    for key, what, wrong, fix in checks:
        bad = [record for record in records if wrong(record)]
        if bad:
            return key, f"{len(bad)} of {len(records)} items {what} (first: {_example(bad[0], field)}); {fix}"
    return None


def _shape_problem(value: Any) -> str | None:
    """Why a `choices` value cannot be read as multiple choices, or None when it can."""
    if isinstance(value, list):
        texts = value
    elif isinstance(value, dict):
        if not all(isinstance(key, str) and len(key.strip()) == 1 and key.strip().isalpha() for key in value):
            return "its keys are not single letters"
        texts = list(value.values())
    else:
        return f"it is a {type(value).__name__}"
    if len(texts) < 2:
        return "it has fewer than two choices"
    if not all(
        isinstance(t, str | int | float) and not isinstance(t, bool) and str(t).strip() for t in texts
    ):
        return "a choice is empty or not a text"
    return None


def _gold_unscorable(scorer: Scorer, record: Record, kind: str) -> bool:
    if record.gold is None or scorer.type_of(record) != kind:
        return False
    if kind == "choice" and _shape_problem(record.input.get(scorer.task.choices_field)) is not None:
        return False  # reported as a wrong shape
    return scorer.canonical(record.gold, record) is None


def _example(record: Record, field: str) -> str:
    question = str(record.input.get("question") or record.input.get("premise") or record.id)
    shown = question if len(question) <= 60 else question[:57] + "..."
    parts = [repr(shown)]
    if record.gold is not None:
        parts.append(f"answer {record.gold!r}")
    if field in record.input:
        parts.append(f"{field} {record.input[field]!r}")
    return ", ".join(parts)
