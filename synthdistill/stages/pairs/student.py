"""The student's answers for the pairs stage: the run's trained student (or a named model), greedy, through
the engine like any local model, on the student's own prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthdistill.errors import StageError
from synthdistill.records import Provenance, Record, Sample
from synthdistill.runs.context import StageContext
from synthdistill.student.card import task_cue
from synthdistill.student.prompts import prompt_messages
from synthdistill.teachers.base import Request


def student_model(config: Any, ctx: StageContext) -> str | None:
    """The model that answers: the stage's `model`, else the run's trained student; None in a dry run that
    has not trained one (nothing is known of its answers then)."""
    model = config.model or ctx.artifacts.get("student_model")
    if model is None and not ctx.run.dry_run:
        raise StageError(
            "no trained student to answer: put a train stage before pairs, or name the model in pairs.model",
            stage=ctx.spec.name,
        )
    return None if model is None else str(model)


def ask_student(
    questions: list[Record], model: str, config: Any, ctx: StageContext
) -> tuple[dict[str, Sample], Provenance]:
    """The student's greedy answer to each question (by record id; a request that failed is absent), and
    the provenance of those answers."""
    cue = task_cue(Path(model))
    student = ctx.local_model(model)
    engine = ctx.engine(student)
    requests = (
        (
            record,
            Request(
                messages=prompt_messages(ctx.templates, config.template, record, cue),
                max_tokens=config.max_tokens,
            ),
        )
        for record in questions
    )
    answers = {record.id: samples[0] for record, samples in engine.map(requests) if samples}
    params = {"max_tokens": config.max_tokens, "temperature": 0.0}
    return answers, ctx.provenance(config.template, params, teacher=student)
