"""Helpers for the critic, filter and self-consistency tests: records and a real stage context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthdistill.config import StageSpec, load_pipeline
from synthdistill.records import Record, Sample
from synthdistill.registry import registry
from synthdistill.runs.context import RunContext, StageContext
from synthdistill.runs.folder import RunFolder
from synthdistill.templates import Templates

PIPELINE = """
name: critics-test
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 8, max_retries: 1}}
student: {{model: smollm2-135m}}
data: {{source: builtin:arith, split: {{train: 4, test: 2}}}}
stages:
  - {stage}: {options}
"""


def record(
    question: str = "q",
    gold: Any = None,
    rationale: str | None = None,
    answer: str | None = None,
    **input_fields: Any,
) -> Record:
    """A record as self_consistency hands it to the filter."""
    fields = {"question": question, **input_fields}
    if gold is not None:
        fields["answer"] = gold
    return Record.from_input(fields).child(rationale=rationale, answer=answer)


def sampled(question: str, gold: Any, texts: list[str]) -> Record:
    """A record as generate hands it on: samples parsed (or failed) from `texts`."""
    from synthdistill.parsing import parse_rationale
    from synthdistill.teachers.engine import ParseError

    samples = []
    for text in texts:
        try:
            samples.append(Sample(text=text, fields=parse_rationale(text)))
        except ParseError as exc:
            samples.append(Sample(text=text, error=str(exc)))
    fields = {"question": question} if gold is None else {"question": question, "answer": gold}
    return Record.from_input(fields).model_copy(update={"samples": samples})


def stage_context(
    folder: Path,
    url: str = "http://127.0.0.1:9/v1",
    stage: str = "filter",
    options: str = "{critics: [answer_match]}",
    test_records: list[Record] | None = None,
) -> StageContext:
    """A real StageContext for `stage`, its pipeline file in folder/pipelines/, its run in folder/outputs/."""
    pipelines = folder / "pipelines"
    pipelines.mkdir(parents=True, exist_ok=True)
    path = pipelines / "p.yaml"
    path.write_text(PIPELINE.format(url=url, stage=stage, options=options))
    pipeline = load_pipeline(path)
    run = RunContext(
        pipeline=pipeline,
        run=RunFolder(folder / "outputs" / "critics-test"),
        templates=Templates.for_pipeline(pipeline.base_dir),
        test_records=test_records or [],
        device="cpu",
    )
    spec: StageSpec = pipeline.stages[0]
    assert registry("stage").get(spec.name)
    return StageContext(run, spec, run.run.stage_dir(spec.folder))
