"""The student's view of a record: the prompt it is shown and the completion it learns to write.

Training and evaluation both build prompts here, so the student is evaluated on exactly the
prompt format it was trained on. Distilling step-by-step (Hsieh et al., 2023) trains two tasks on
one input, told apart by a cue on the prompt (`TaskCue`): predict the label, and generate the rationale.
A multiple-choice answer is learnt in the answer line as the choice's text, its letter or both
(`AnswerFormat`); every form reads back as the same choice (scoring/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from synthdistill.parsing import choice_letter, choice_map
from synthdistill.records import Record
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig
from synthdistill.templates import Templates

# The final-answer sentence the shipped prompts teach and parsing.py reads back.
ANSWER_LINE = "The answer is {answer}."

Task = Literal["label", "rationale"]
"""The two tasks of step-by-step training."""

AnswerFormat = Literal["text", "letter", "letter_text"]
"""How the answer line names a multiple-choice answer: by the choice's text ("The answer is house."), its
letter ("The answer is (c).") or both ("The answer is (c) house.")."""


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


def target_text(record: Record, answer_format: AnswerFormat = "text", task: TaskConfig | None = None) -> str:
    """The completion the student learns: the rationale, then the answer sentence.

    A record without a produced answer (a raw data item) falls back to its gold answer, so training on
    the data alone is label-only training. `answer_format` and `task` are as for `label_text`.
    """
    rationale = (record.rationale or "").strip()
    answer = label_text(record, answer_format, task)
    return f"{rationale}\n{answer}" if rationale else answer


def response_text(record: Record) -> str:
    """The teacher's reply as written: a plain-text reply (generate's `parse: text` keeps it as the rationale)
    or an answer alone (a Self-Instruct output) as it is, a rationale with an answer as `target_text`."""
    rationale, answer = (record.rationale or "").strip(), (record.answer or "").strip()
    if not (rationale and answer):
        return rationale or answer
    return target_text(record)


def label_text(record: Record, answer_format: AnswerFormat = "text", task: TaskConfig | None = None) -> str:
    """The answer sentence alone: the label task's completion.

    For a multiple-choice record (as `task`'s scorer tells one: `choices` in its input), `answer_format`
    names the choice by its text (the answer as it is), its letter or both; other records ignore it.
    """
    answer = record.answer if record.answer is not None else record.gold
    if answer_format != "text" and answer is not None:
        answer = _choice_answer(answer, record, answer_format, task or TaskConfig())
    return ANSWER_LINE.format(answer=answer)


def normalize_question(text: str) -> str:
    """A question's text for leak checks: lower-cased, whitespace collapsed, trailing punctuation dropped."""
    return re.sub(r"[\s.?!]+$", "", " ".join(str(text).split()).lower())


def _choice_answer(answer: Any, record: Record, answer_format: AnswerFormat, task: TaskConfig) -> Any:
    """A multiple-choice answer as its lower-case letter ("(c)") or letter and text ("(c) house"); any
    other answer, or one that names none of the choices, as it is."""
    choices = record.input.get(task.choices_field)
    if Scorer(task).type_of(record) != "choice" or not isinstance(choices, list | dict) or not choices:
        return answer
    letter = choice_letter(answer, choices)
    if letter is None:
        return answer
    # Lower case, as the shipped templates letter the choices and PaLM's rationales name them.
    mark = f"({letter.lower()})"
    return mark if answer_format == "letter" else f"{mark} {choice_map(choices)[letter].strip()}"
