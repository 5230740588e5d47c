"""The student's view of a record: the prompt it is shown and the completion it learns to write.

Training and evaluation both build prompts here, so the student is evaluated on exactly the
prompt format it was trained on. Distilling step-by-step (Hsieh et al., 2023) trains two tasks on
one input, told apart by a cue on the prompt (`TaskCue`): predict the label, and generate the rationale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from synthdistill.records import Record
from synthdistill.templates import Templates

# The final-answer sentence the shipped prompts teach and parsing.py reads back.
ANSWER_LINE = "The answer is {answer}."

Task = Literal["label", "rationale"]
"""The two tasks of step-by-step training."""


@dataclass(frozen=True)
class TaskCue:
    """Text that tells a step-by-step student which task it is asked: `prefix` starts the last user
    message, `suffix` ends it. The empty cue leaves the prompt as the template renders it."""

    prefix: str = ""
    suffix: str = ""


def prompt_messages(
    templates: Templates, template: str, record: Record, cue: TaskCue = TaskCue()
) -> list[dict[str, str]]:
    """The chat messages the student sees for `record`, with `cue` around the last user message."""
    variables: dict[str, Any] = {**record.input, "record": record}
    messages = templates.render_messages(template, variables)
    if cue.prefix or cue.suffix:
        last = max(i for i, message in enumerate(messages) if message["role"] == "user")
        messages[last] = {**messages[last], "content": cue.prefix + messages[last]["content"] + cue.suffix}
    return messages


def target_text(record: Record) -> str:
    """The completion the student learns: the rationale, then the answer sentence.

    A record without a produced answer (a raw data item) falls back to its gold answer, so training on
    the data alone is label-only training.
    """
    rationale = (record.rationale or "").strip()
    answer = label_text(record)
    return f"{rationale}\n{answer}" if rationale else answer


def response_text(record: Record) -> str:
    """The teacher's reply as written: a plain-text reply (generate's `parse: text` keeps it as the rationale)
    or an answer alone (a Self-Instruct output) as it is, a rationale with an answer as `target_text`."""
    rationale, answer = (record.rationale or "").strip(), (record.answer or "").strip()
    if not (rationale and answer):
        return rationale or answer
    return target_text(record)


def label_text(record: Record) -> str:
    """The answer sentence alone: the label task's completion."""
    answer = record.answer if record.answer is not None else record.gold
    return ANSWER_LINE.format(answer=answer)


def normalize_question(text: str) -> str:
    """A question's text for leak checks: lower-cased, whitespace collapsed, trailing punctuation dropped."""
    return re.sub(r"[\s.?!]+$", "", " ".join(str(text).split()).lower())
