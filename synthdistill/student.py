"""The student's view of a record: the prompt it is shown and the completion it learns to write.

Training and evaluation both build prompts here, so the student is evaluated on exactly the
prompt format it was trained on.
"""

from __future__ import annotations

from typing import Any

from synthdistill.records import Record
from synthdistill.templates import Templates

# The final-answer sentence the shipped prompts teach and parsing.py reads back.
ANSWER_LINE = "The answer is {answer}."


def prompt_messages(templates: Templates, template: str, record: Record) -> list[dict[str, str]]:
    """The chat messages the student sees for `record`."""
    variables: dict[str, Any] = {**record.input, "record": record}
    return templates.render_messages(template, variables)


def target_text(record: Record) -> str:
    """The completion the student learns: the rationale, then the answer sentence."""
    answer = ANSWER_LINE.format(answer=record.answer)
    rationale = (record.rationale or "").strip()
    return f"{rationale}\n{answer}" if rationale else answer
