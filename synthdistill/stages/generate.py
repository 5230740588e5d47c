"""generate: render a template per record, sample n teacher completions, parse rationale and answer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.context import StageContext
from synthdistill.engine import Parser
from synthdistill.parsing import parse_rationale
from synthdistill.records import Provenance, Record
from synthdistill.stages import Stage
from synthdistill.teachers.base import Request

_PARSERS: dict[str, Parser | None] = {"rationale": parse_rationale, "text": None}


class GenerateConfig(BaseModel):
    """Options of the generate stage."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        "cot_rationale.j2", description="Prompt template (prompts/ or beside the pipeline)."
    )
    n: int = Field(4, ge=1, le=128, description="Samples per record; a weak teacher needs several (STaR).")
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    # Rationales need room: at 96 new tokens most of SmolLM2's right answers were cut off (LAB.md).
    max_tokens: int = Field(192, ge=1, description="Most new tokens per sample.")
    stop: list[str] = Field(default_factory=list, description="Strings that end a sample.")
    parse: Literal["rationale", "text"] = Field(
        "rationale", description="How to read a sample: rationale + final answer, or the plain text."
    )
    parse_retries: int = Field(
        0, ge=0, le=10, description="Extra samples asked for when a sample cannot be parsed (sampling only)."
    )


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Sample completions for each record; a record with no parsable sample is dropped with the reason."""
    config: GenerateConfig = ctx.config
    engine = ctx.engine()
    teacher = ctx.pipeline.config.teacher
    provenance = Provenance(
        stage=ctx.spec.name,
        teacher=teacher.backend,
        model=teacher.model,
        template=config.template,
        template_hash=ctx.templates.hash(config.template),
        params=config.model_dump(exclude={"template", "parse", "parse_retries"}),
    )

    def requests() -> Iterator[tuple[Record, Request]]:
        for record in records:
            messages = ctx.templates.render_messages(config.template, _variables(record))
            yield (
                record,
                Request(
                    messages=messages,
                    n=config.n,
                    temperature=config.temperature,
                    top_p=config.top_p,
                    max_tokens=config.max_tokens,
                    stop=config.stop,
                    seed=ctx.seed,
                ),
            )

    parsed = failed = 0
    for record, samples in engine.map(requests(), _PARSERS[config.parse], parse_retries=config.parse_retries):
        good = [s for s in samples if s.error is None]
        parsed += len(good)
        failed += len(samples) - len(good)
        update: dict[str, Any] = {"samples": samples, "provenance": [*record.provenance, provenance]}
        if good:
            update["rationale"] = good[0].fields.get("rationale", good[0].text)
            update["answer"] = good[0].fields.get("answer")
            yield record.model_copy(update=update)
        else:
            reasons = sorted({s.error or "" for s in samples})
            yield record.model_copy(update=update).drop(
                "generate", "no parsable sample: " + "; ".join(reasons)
            )
    ctx.details.update({"samples_parsed": parsed, "samples_failed": failed})


def _variables(record: Record) -> dict[str, Any]:
    return {**record.input, "record": record}


STAGE = Stage(
    name="generate",
    config=GenerateConfig,
    run=run,
    summary="Sample rationales and answers from the teacher.",
    inputs=lambda config: [config.template],
    uses=("teacher",),
)
