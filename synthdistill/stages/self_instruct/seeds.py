"""The seed tasks of self_instruct: a seed record read and checked, and a seed handed on as a new task."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from synthdistill.errors import StageError
from synthdistill.records import Record


@dataclass
class Seed:
    """A seed task as the loop reads it."""

    record: Record
    instruction: str
    instances: list[dict[str, str]]
    is_classification: bool


def read_seed(record: Record, stage: str) -> Seed:
    """A seed record read and checked: its instruction (question), instances and classification flag."""
    fields = record.input
    question = fields.get("question")
    if not isinstance(question, str) or not question.strip():
        raise StageError(
            "a seed task needs its instruction as `question`; map it in data.fields (question: instruction)",
            stage=stage,
            record_id=record.id,
        )
    instances = fields.get("instances")
    if not isinstance(instances, list) or not all(
        isinstance(i, dict) and isinstance(i.get("output"), str) and isinstance(i.get("input", ""), str)
        for i in instances
    ):
        raise StageError(
            f"`instances` must be a list of {{input, output}} objects, got {instances!r:.80}; map the seed "
            "file's instances column in data.fields (instances: instances)",
            stage=stage,
            record_id=record.id,
        )
    flag = _flag(fields.get("is_classification"))
    if flag is None:
        raise StageError(
            f"`is_classification` must be true or false, got {fields.get('is_classification')!r}; map the "
            "seed file's column in data.fields (is_classification: is_classification)",
            stage=stage,
            record_id=record.id,
        )
    cleaned = [{"input": str(i.get("input", "")).strip(), "output": i["output"].strip()} for i in instances]
    return Seed(record, one_line(question), cleaned, flag)


def handed_on(seed: Seed) -> Record:
    """A seed in the shape of a new instruction: its first instance's input in the question, its output
    the answer."""
    first = seed.instances[0] if seed.instances else None
    question = f"{seed.instruction}\n\n{first['input']}" if first and first["input"] else seed.instruction
    inputs = {
        **seed.record.input,
        "question": question,
        "instruction": seed.instruction,
        "instances": seed.instances,
        "is_classification": seed.is_classification,
    }
    return seed.record.model_copy(update={"input": inputs, "answer": first["output"] if first else None})


def one_line(text: str) -> str:
    """`text` with its runs of whitespace made one space, on one line."""
    return re.sub(r"\s+", " ", text).strip()


def _flag(value: Any) -> bool | None:
    # A CSV column, or a mapping through a jinja expression, gives text rather than a JSON boolean.
    if isinstance(value, bool):
        return value
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
        str(value).strip().lower()
    )
