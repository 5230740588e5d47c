"""evaluate: accuracy of base student, trained student and (optionally) teacher on the test split."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.config import TeacherConfig
from synthdistill.context import StageContext
from synthdistill.engine import Engine
from synthdistill.parsing import answers_match, extract_answer
from synthdistill.records import Record, Verdict
from synthdistill.runfolder import RecordWriter
from synthdistill.stages import Stage
from synthdistill.student import prompt_messages
from synthdistill.teachers.base import Request


class EvaluateConfig(BaseModel):
    """Options of the evaluate stage."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        "cot_student.j2", description="Prompt template; the train stage's, so formats agree."
    )
    max_tokens: int = Field(192, ge=1, description="Most new tokens per answer (greedy decoding).")
    teacher: bool = Field(False, description="Whether to evaluate the teacher too (costs teacher calls).")
    teacher_template: str | None = Field(
        None, description="Template for the teacher's evaluation; None uses `template`."
    )
    batch_size: int = Field(32, ge=1, description="Sequences per local generate() call.")


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Evaluate each model on the test split; metrics go to the manifest, predictions to the stage folder."""
    config: EvaluateConfig = ctx.config
    test = ctx.test_records
    if not test:
        ctx.log.warning("the test split is empty (data.split.test: 0); nothing to evaluate")
    models: list[tuple[str, Engine, str]] = []
    student = ctx.pipeline.config.student.model
    local = {"backend": "transformers", "batch_size": config.batch_size}
    models.append(("base", ctx.engine(TeacherConfig(model=student, **local)), config.template))
    if "student_model" in ctx.artifacts:
        trained = str(ctx.artifacts["student_model"])
        models.append(("student", ctx.engine(TeacherConfig(model=trained, **local)), config.template))
    if config.teacher:
        models.append(("teacher", ctx.engine(), config.teacher_template or config.template))
    for label, engine, template in models:
        ctx.metrics[label] = _evaluate(label, engine, template, test, config, ctx)
    yield from records


def _evaluate(
    label: str, engine: Engine, template: str, test: list[Record], config: EvaluateConfig, ctx: StageContext
) -> dict[str, Any]:
    requests = (
        (
            record,
            Request(messages=prompt_messages(ctx.templates, template, record), max_tokens=config.max_tokens),
        )
        for record in test
    )
    rows = []
    for record, samples in engine.map(requests):
        answer = extract_answer(samples[0].text) if samples else None
        ok = answers_match(answer, record.gold)
        verdict = Verdict(score=float(ok), passed=ok, reason=f"predicted {answer!r}, gold {record.gold!r}")
        rows.append(
            record.model_copy(update={"samples": samples, "answer": answer, "verdicts": {"correct": verdict}})
        )
    path = ctx.folder / f"predictions-{label}.jsonl"
    path.unlink(missing_ok=True)
    with RecordWriter(path) as writer:
        writer.write(rows)
    correct = sum(row.verdicts["correct"].passed for row in rows)
    accuracy = correct / len(test) if test else 0.0
    ctx.log.info("%s accuracy %.3f on %d items", label, accuracy, len(test))
    return {"accuracy": round(accuracy, 4), "correct": correct, "n": len(test)}


STAGE = Stage(
    name="evaluate",
    config=EvaluateConfig,
    run=run,
    summary="Accuracy of base, student (and teacher) on the held-out split.",
    inputs=lambda config: [config.template] + ([config.teacher_template] if config.teacher_template else []),
    batch_input=True,
    writes_records=False,
    uses=("student", "teacher"),
)
