"""What the student is trained on: records as chat prompt/completion pairs, without test questions."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from synthdistill.errors import DataError, StageError
from synthdistill.records import Record
from synthdistill.runs.context import StageContext
from synthdistill.student.prompts import (
    TaskCue,
    label_text,
    normalize_question,
    prompt_messages,
    response_text,
    target_text,
)

if TYPE_CHECKING:
    from synthdistill.stages.train.stage import ExtraDataConfig, TrainConfig


def build_examples(records: list[Record], config: TrainConfig, ctx: StageContext) -> list[dict[str, Any]]:
    """Prompt/completion pairs in chat form; with step-by-step, a label and a rationale example per record.

    A multiple-choice answer line names the choice as `config.answer_format` says (the label task's too).
    """
    from synthdistill.stages.train.stepbystep import TASK_IDS

    template = config.template
    task, answer_format = ctx.pipeline.config.data.task, config.answer_format
    if config.step_by_step is None:
        learn: dict[str, Callable[[Record], str]] = {
            "label": lambda r: label_text(r, answer_format, task),
            "rationale": lambda r: target_text(r, answer_format, task),
            "response": response_text,
        }
        return [_example(ctx, template, r, TaskCue(), learn[config.target](r)) for r in records]
    sbs = config.step_by_step
    examples = []
    for record in records:
        label = _example(ctx, template, record, sbs.cue("label"), label_text(record, answer_format, task))
        examples.append({**label, "task": TASK_IDS["label"]})
        if (record.rationale or "").strip():
            rationale = _example(
                ctx, template, record, sbs.cue("rationale"), (record.rationale or "").strip()
            )
            examples.append({**rationale, "task": TASK_IDS["rationale"]})
    return examples


def _example(
    ctx: StageContext, template: str, record: Record, cue: TaskCue, completion: str
) -> dict[str, Any]:
    return {
        "prompt": prompt_messages(ctx.templates, template, record, cue),
        "completion": [{"role": "assistant", "content": completion}],
    }


def sample(records: list[Record], limit: int | None, seed: int) -> list[Record]:
    """A seeded sample of at most `limit` records (all of them when None)."""
    if limit is None or len(records) <= limit:
        return list(records)
    return random.Random(seed).sample(records, limit)


def extra_records(extra: ExtraDataConfig, ctx: StageContext) -> list[Record]:
    """The user file's rows as records whose rationale and answer (when mapped) are what is learnt."""
    from synthdistill.data import load_items

    file = str(ctx.pipeline.path)
    key = f"stages[{ctx.spec.index - 1}].train.extra_data.source"
    items = load_items(extra.source, extra.fields, extra.options, ctx.pipeline.base_dir, file=file, key=key)
    records = []
    for item in items[: extra.limit]:
        if "question" not in item:
            raise DataError(
                f"{file}: train.extra_data: rows of {extra.source} have no question; map one with "
                "extra_data.fields.question"
            )
        record = Record.from_input(item)
        records.append(
            record.model_copy(update={"rationale": item.get("rationale"), "answer": item.get("answer")})
        )
    return records


def check_leaks(records: list[Record], ctx: StageContext) -> list[Record]:
    """Report (and by `on_leak`, drop or refuse) training records whose question is in the test split."""
    config: TrainConfig = ctx.config
    held_out = {normalize_question(r.input.get("question", "")) for r in ctx.test_records}
    held_out.discard("")
    leaked = [r for r in records if normalize_question(r.input.get("question", "")) in held_out]
    if not leaked:
        ctx.details["leaks"] = 0
        return records
    message = (
        f"{len(leaked)} training examples have a question of the test split "
        f"(first ids: {', '.join(r.id for r in leaked[:5])})"
    )
    ctx.details["leaks"] = len(leaked)
    ctx.details["leaked_ids"] = [r.id for r in leaked[:100]]
    if config.on_leak == "error":
        raise StageError(
            f"{message}; remove them from the training data, or set train.on_leak to drop",
            stage=ctx.spec.name,
        )
    action = "dropped" if config.on_leak == "drop" else "kept (on_leak: warn)"
    ctx.details.setdefault("warnings", []).append(f"{message}: {action}")
    ctx.log.warning("%s: %s", message, action)
    if config.on_leak == "warn":
        return records
    ids = {id(r) for r in leaked}
    return [r for r in records if id(r) not in ids]
