"""generate: render a template per record, sample n teacher completions, parse what the stage asks for.

`parse` says what a sample holds: a rationale and final answer, plain text, a program of thought (a
fenced ```python block, run in the sandbox: its answer is the last line it prints), or, for symbolic
knowledge (synthdistill/symbolic.py), a list of events or of tails, each of which becomes a child
record. `expand` fans a record out into one request per combination of template values (one per
relation, say), and each output record carries its values in its input. `recorded` takes completions a
teacher already wrote (recorded.py) as the samples instead, parsed the same way, without calling the
teacher.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from synthdistill.config import MaxTokens, ParseRetries, Temperature, TopP
from synthdistill.parsing import parse_program, parse_rationale, run_sample_programs
from synthdistill.records import Provenance, Record, Sample, chunks, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.sandbox import Limits
from synthdistill.stages.generate.recorded import Recorded, RecordedConfig, open_recorded
from synthdistill.stages.generate.teachers import ask, asked, each_teacher, fingerprinted
from synthdistill.symbolic import event_records, parse_events, parse_tails, triple_records
from synthdistill.teacher_config import ALL_TEACHERS
from synthdistill.teachers.base import Request
from synthdistill.teachers.engine import Parser

_PARSERS: dict[str, Parser | None] = {
    "rationale": parse_rationale,
    "text": None,
    "program": parse_program,
    "events": parse_events,
    "triples": parse_tails,
}
_CHILDREN = {"events": event_records, "triples": triple_records}
# The input fields of the child records a parse mode makes (symbolic.py).
PARSED_INPUTS = {"events": ("head",), "triples": ("head", "relation", "question")}

# (expanded values, samples) for each request made for one record.
_Answered = list[tuple[dict[str, str], list[Sample]]]
# The options that shape a request: recorded completions were written without one.
_SAMPLING = ("template", "n", "temperature", "top_p", "max_tokens", "stop", "expand", "parse_retries")


class _Payload(NamedTuple):
    """What a request was made for: its record, the record's place in its chunk, the expanded values."""

    chunk_requests: int
    position: int
    record: Record
    values: dict[str, str]


class GenerateConfig(BaseModel):
    """Options of the generate stage."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        "cot_rationale.j2", description="Prompt template (prompts/ or beside the pipeline)."
    )
    n: int = Field(4, ge=1, le=128, description="Samples per record; a weak teacher needs several (STaR).")
    temperature: Temperature = 0.8
    top_p: TopP = 0.95
    # Rationales need room: at 96 new tokens most of SmolLM2's right answers were cut off (LAB.md).
    max_tokens: MaxTokens = 192
    stop: list[str] = Field(default_factory=list, description="Strings that end a sample.")
    parse: Literal["rationale", "text", "program", "events", "triples"] = Field(
        "rationale",
        description="How to read a sample: rationale + final answer; the plain text; a program of "
        "thought (the first ```python block is the rationale, run in the sandbox; the last line it prints "
        "is the answer, and a sample whose program fails, or prints other than an answer the text "
        "states after it, fails with the reason); a numbered list of events (one child record per event, "
        "input {head}); or a numbered list of tails (one child per tail, input {head, relation, "
        "question}, answer = the tail).",
    )
    sandbox: Limits = Field(
        default_factory=Limits,
        description="The limits of the sandbox that runs each program (parse: program only).",
    )
    expand: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Template variables to fan out: one request per record and combination of values "
        "(for example {relation: [xIntent, xWant]}); each output record carries its values in its "
        "input. Empty makes one request per record.",
    )
    # Only a sampling teacher can answer differently when asked again.
    parse_retries: ParseRetries = 0
    teachers: list[str] | Literal["all"] = Field(
        default_factory=list,
        description="The pipeline's named teachers to ask, in order (`default` is its `teacher:`), or all "
        "of its `teachers:`: each answers `n` samples per request, a record's samples are their union in "
        "this order (so self_consistency votes across teachers), and each sample names its teacher. Empty "
        "asks the pipeline's teacher.",
    )
    recorded: RecordedConfig | None = Field(
        None,
        description="Take completions a teacher already wrote (a data column, a batch job's output file, "
        "an earlier export) as the samples, parsed as `parse` says, instead of calling the teacher: no "
        "call, no cache entry, nothing spent. None samples the teacher.",
    )

    _asked: dict[str, Any] = PrivateAttr(default_factory=dict)
    """The configs of the teachers asked, as fingerprints see them, when the pipeline was known."""

    @field_validator("teachers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        # One name stands for a list of it; a mapping is this config's own dump, read back.
        if isinstance(value, dict):
            return list(value)
        return [value] if isinstance(value, str) and value != ALL_TEACHERS else value

    @model_validator(mode="after")
    def _resolve_teachers(self, info: ValidationInfo) -> GenerateConfig:
        # The teachers' configs join the stage's fingerprint, so that changing one re-runs the stage.
        self._asked = fingerprinted(self.teachers, (info.context or {}).get("teachers", {}))
        return self

    @field_validator("expand")
    @classmethod
    def _values(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in value.items():
            if not values:
                raise ValueError(f"expand.{name} has no values; give at least one or remove it")
            if len(set(values)) < len(values):
                raise ValueError(f"expand.{name} repeats a value; list each once")
        return value

    @model_validator(mode="after")
    def _recorded_is_not_sampled(self) -> GenerateConfig:
        given = [name for name in _SAMPLING if name in self.model_fields_set]
        if self.recorded is not None and given:
            raise ValueError(
                f"recorded completions are written already, not requested: remove {', '.join(given)} "
                "(or remove recorded to sample the teacher)"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unset, so that the fingerprints of runs made before the option existed still hold.
        dumped: dict[str, Any] = handler(self)
        if self.recorded is None:
            dumped.pop("recorded", None)
        if not self.teachers:
            dumped.pop("teachers", None)
        elif self._asked and "teachers" in dumped:
            dumped["teachers"] = self._asked
        if self.parse != "program":
            dumped.pop("sandbox", None)
        return dumped


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Sample completions for each record; a record with no parsable sample is dropped with the reason."""
    config: GenerateConfig = ctx.config
    if config.recorded is not None:
        # No engine is built: nothing is loaded, called, cached or spent.
        yield from _run_recorded(records, ctx, open_recorded(config.recorded, ctx.pipeline, ctx.spec.name))
        return
    asking = asked(config.teachers, ctx.pipeline.config.teachers)
    params = config.model_dump(exclude={"template", "parse", "parse_retries", "expand", "teachers"})
    provenances = [ctx.provenance(config.template, params, teacher=name) for name in asking]
    provenance = provenances[0]
    engines = {name: ctx.engine(name) for name in asking}
    before = {name: engine.stats.model_copy() for name, engine in engines.items()}
    names = list(config.expand)
    combinations = [
        dict(zip(names, values, strict=True)) for values in itertools.product(*config.expand.values())
    ]

    # Expanded requests go value-major within a chunk of records, so that consecutive requests share
    # their template's prefix (a relation's instruction and examples), which a local teacher computes
    # once per batch; outputs still come out record by record, in input order.
    chunk = ctx.pipeline.config.teacher.batch_size if len(combinations) > 1 else 1

    def requests() -> Iterator[tuple[_Payload, Request]]:
        for group in chunks(records, chunk):
            for values in combinations:
                for position, record in enumerate(group):
                    messages = ctx.templates.render_messages(config.template, _variables(record, values))
                    payload = _Payload(len(group) * len(combinations), position, record, values)
                    yield (
                        payload,
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

    counts = {"samples_parsed": 0, "samples_failed": 0, "records_made": 0}
    by_value: dict[str, dict[str, int]] = {}
    answers = ask(engines, requests(), _PARSERS[config.parse], config.parse_retries)
    if config.parse == "program":
        answers = _executed(answers, config.sandbox)
    pending: list[tuple[_Payload, list[Sample]]] = []
    for payload, samples in answers:
        pending.append((payload, samples))
        if len(pending) < payload.chunk_requests:
            continue
        # engine.map keeps input order, so a chunk is complete once its last request is answered.
        # sort is stable: a record's answers stay in the order of its expanded values.
        pending.sort(key=lambda answer: answer[0].position)
        for _, group in itertools.groupby(pending, key=lambda answer: answer[0].position):
            pairs = list(group)
            record = pairs[0][0].record
            answered = [(p.values, group_samples) for p, group_samples in pairs]
            outputs = _outputs(record, answered, config.parse, provenance)
            _count(answered, outputs, counts, by_value)
            yield from each_teacher(outputs, provenance, provenances)
        pending = []
    _report(ctx, counts, by_value)
    if asking != [None]:
        ctx.details["by_teacher"] = {
            name: engine.stats.since(before[name]) for name, engine in engines.items() if name
        }


def _run_recorded(records: Iterable[Record], ctx: StageContext, recorded: Recorded) -> Iterator[Record]:
    """Each record with its recorded completions as samples; one without any is dropped with the reason."""
    config: GenerateConfig = ctx.config
    counts = {"samples_parsed": 0, "samples_failed": 0, "records_made": 0, "records_unrecorded": 0}
    for record in records:
        samples, reason = recorded.samples(record, _PARSERS[config.parse])
        if config.parse == "program":
            samples = run_sample_programs(samples, config.sandbox)
        if not samples:
            counts["records_unrecorded"] += 1
            update = {"provenance": [*record.provenance, recorded.provenance]}
            yield record.model_copy(update=update).drop("generate", reason)
            continue
        answered: _Answered = [({}, samples)]
        outputs = _outputs(record, answered, config.parse, recorded.provenance)
        _count(answered, outputs, counts, {})
        yield from outputs
    if counts["records_unrecorded"]:
        ctx.log.warning(
            "%d records had no recorded completion and were dropped (see their generate verdict)",
            counts["records_unrecorded"],
        )
    _report(ctx, counts, {})


def _executed(
    answers: Iterable[tuple[_Payload, list[Sample]]], limits: Limits
) -> Iterator[tuple[_Payload, list[Sample]]]:
    """The answers with their programs run, a few requests' worth at a time so the sandbox runs them side
    by side (off the engine's loop, which goes on answering meanwhile)."""
    for group in chunks(answers, 8):
        done = iter(run_sample_programs([sample for _, samples in group for sample in samples], limits))
        yield from ((payload, [next(done) for _ in samples]) for payload, samples in group)


def _report(ctx: StageContext, counts: dict[str, int], by_value: dict[str, dict[str, int]]) -> None:
    total = counts["samples_parsed"] + counts["samples_failed"]
    ctx.details.update(counts)
    ctx.details["parse_rate"] = round(counts["samples_parsed"] / total, 4) if total else None
    if by_value:
        ctx.details["by_value"] = by_value


def _outputs(record: Record, answered: _Answered, parse: str, provenance: Provenance) -> list[Record]:
    """The records made from one input: itself answered, one per expanded value, or its children."""
    every = [sample for _, samples in answered for sample in samples]
    made: list[Record] = []
    if parse in _CHILDREN:
        made = _CHILDREN[parse](record, answered, provenance)
    else:
        for values, samples in answered:
            good = [s for s in samples if s.error is None]
            if not good:
                continue
            produced = {
                "rationale": good[0].fields.get("rationale", good[0].text),
                "answer": good[0].fields.get("answer"),
            }
            if not values:
                update = {"samples": samples, "provenance": [*record.provenance, provenance], **produced}
                made.append(record.model_copy(update=update))
                continue
            inputs = {**record.input, **values}
            made.append(
                Record(
                    id=stable_hash(record.id, inputs, produced),
                    parent_id=record.id,
                    source_id=record.id,
                    input=inputs,
                    samples=samples,
                    provenance=[*record.provenance, provenance],
                    **produced,
                )
            )
    if made:
        return made
    reasons = sorted({s.error or "" for s in every}) or ["no sample"]
    update = {"samples": every, "provenance": [*record.provenance, provenance]}
    return [record.model_copy(update=update).drop("generate", "no parsable sample: " + "; ".join(reasons))]


def _count(
    answered: _Answered, outputs: list[Record], counts: dict[str, int], by_value: dict[str, dict[str, int]]
) -> None:
    made = [r for r in outputs if r.kept]
    counts["records_made"] += len(made)
    for values, samples in answered:
        parsed = sum(s.error is None for s in samples)
        counts["samples_parsed"] += parsed
        counts["samples_failed"] += len(samples) - parsed
        if not values:
            continue
        entry = by_value.setdefault(
            ",".join(values.values()), {"samples_parsed": 0, "samples_failed": 0, "records_made": 0}
        )
        entry["samples_parsed"] += parsed
        entry["samples_failed"] += len(samples) - parsed
        entry["records_made"] += sum(all(r.input.get(k) == v for k, v in values.items()) for r in made)


def _variables(record: Record, values: dict[str, str]) -> dict[str, Any]:
    return {**record.input, **values, "record": record}


def _recorded_file(config: GenerateConfig, base_dir: Path) -> list[Path]:
    # A file of recorded completions is hashed into the fingerprint, as a template is.
    if config.recorded is None or config.recorded.file is None:
        return []
    return [base_dir / Path(config.recorded.file).expanduser()]


STAGE = Stage(
    name="generate",
    config=GenerateConfig,
    run=run,
    summary="Sample rationales and answers (or events and triples) from the teacher.",
    inputs=lambda config: [] if config.recorded else [config.template],
    files=lambda config, base_dir, run_dir: _recorded_file(config, base_dir),
    uses=("teacher",),
    variables=lambda config: {"record", *config.expand},
    adds=lambda config: {*config.expand, *PARSED_INPUTS.get(config.parse, ())},
    makes_outputs=True,
)
