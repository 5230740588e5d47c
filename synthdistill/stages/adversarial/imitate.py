"""imitate, a step of the adversarial rounds: the student as trained so far answers a sample of the pool."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.records import Record, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.student.card import task_cue
from synthdistill.student.prompts import prompt_messages
from synthdistill.teachers.base import Request


class ImitateConfig(BaseModel):
    """The imitation step: which student answers which items."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(description="The student's prompt template.")
    max_tokens: int = Field(description="Most new tokens of an answer (greedy).")
    model: str = Field(description="The student's folder.")
    probe: int | None = Field(description="Items answered (a seeded sample); None is all.")
    round: int = Field(description="The round, which seeds the sample.")


def _imitate(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """The pool, with the student's greedy answer as the only sample of each probed item."""
    config: ImitateConfig = ctx.config
    pool = list(records)
    chosen = _probe(pool, config.probe, ctx.seed, config.round)
    cue = task_cue(Path(config.model))
    student = ctx.local_model(config.model)
    engine = ctx.engine(student)
    provenance = ctx.provenance(config.template, {}, teacher=student, stage="imitate")
    requests = (
        (
            record,
            Request(
                messages=prompt_messages(ctx.templates, config.template, record, cue),
                max_tokens=config.max_tokens,
            ),
        )
        for record in pool
        if record.id in chosen
    )
    answers = {record.id: samples for record, samples in engine.map(requests)}
    for record in pool:
        # In the round's files a record's samples are the student's answer (none when not probed); the
        # teacher's chosen rationale and answer stay on the record.
        samples = answers.get(record.id, [])
        update: dict[str, Any] = {"samples": samples}
        if samples:
            update["provenance"] = [*record.provenance, provenance]
        yield record.model_copy(update=update)
    ctx.details["probed"] = len(answers)


def _probe(pool: list[Record], size: int | None, seed: int, round: int) -> set[str]:
    # One record per question: a pool kept with several rationales per problem asks each problem once.
    first: dict[str, str] = {}
    for record in pool:
        first.setdefault(str(record.input.get("question", record.id)), record.id)
    ids = list(first.values())
    if size is None or size >= len(ids):
        return set(ids)
    return set(random.Random(stable_hash(seed, round)).sample(ids, size))


IMITATE = Stage(
    name="imitate",
    config=ImitateConfig,
    run=_imitate,
    summary="The student answers a sample of the pool.",
    inputs=lambda config: [config.template],
    batch_input=True,
)
