"""`synthdistill run --dry-run`: what a pipeline would send to its teachers, before anything is spent.

Each stage that writes records runs with engines that only count: every request is rendered exactly as
the real run renders it and looked up in the call cache, so the plan says how many calls the cache
answers and how many would be paid for, with their tokens and worst-case cost (prompt tokens estimated
from characters, completion tokens at max_tokens). Nothing is written: no run folder, no cache file (the
cache makes its file at the first sample stored), and no converted model (a local model's cache identity
hashes the embedded GGUF itself, as the real run's does). A stage's input is known for the first stage
(the data), and for a later stage when an earlier run left the records of the stage before it; otherwise
the plan says so instead of guessing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from synthdistill import preflight
from synthdistill.config import Pipeline
from synthdistill.pipeline import RunOptions
from synthdistill.records import Record
from synthdistill.registry import registry
from synthdistill.runs.context import RunContext, StageContext
from synthdistill.runs.folder import RunFolder, read_records
from synthdistill.teachers.counters import Planned


@dataclass
class StagePlan:
    """One stage of a dry run."""

    stage: str
    inputs: int | None
    """Records the stage would read; None when they are not known before earlier stages run."""
    planned: Planned | None
    """What it would send; None when it cannot be estimated."""
    priced: bool = True
    """Whether every teacher it calls has a known price."""
    note: str = ""


def plan_pipeline(pipeline: Pipeline, options: RunOptions) -> list[StagePlan]:
    """The calls, tokens and worst-case cost each stage of `pipeline` would need now."""
    config = pipeline.config
    folder = RunFolder(Path(config.outputs) / (options.run_name or config.name))
    checked = preflight.check(pipeline, options.limit)
    train, test = checked.train, checked.test
    ctx = RunContext.create(pipeline, folder, test, templates=checked.templates, dry_run=True)
    plans: list[StagePlan] = []
    inputs: list[Record] | None = train
    unknown_after = ""
    try:
        with tempfile.TemporaryDirectory(prefix="synthdistill-dry-run-") as scratch:
            for spec in pipeline.stages:
                stage = registry("stage").get(spec.name)
                if inputs is None:
                    plans.append(
                        StagePlan(spec.folder, None, None, note=f"input unknown until {unknown_after} runs")
                    )
                    continue
                if not stage.writes_records or stage.needs_student:
                    local = "teacher" not in stage.uses
                    note = "no teacher calls" if local else "calls the teacher on outputs not made yet"
                    plans.append(StagePlan(spec.folder, len(inputs), Planned() if local else None, note=note))
                    if stage.writes_records:
                        inputs, unknown_after = None, spec.folder
                    continue
                sctx = StageContext(ctx, spec, Path(scratch) / spec.folder)
                sctx.folder.mkdir()
                for _ in stage.run(iter(inputs), sctx):
                    pass
                planned, priced = ctx.take_planned()
                plans.append(StagePlan(spec.folder, len(inputs), planned, priced))
                # The next stage reads this one's output: known only if an earlier run left it.
                previous = folder.root / spec.folder / "records.jsonl"
                if previous.exists():
                    inputs = list(read_records(previous, kept_only=True))
                    plans[-1].note = "next stage's input: this stage's records from the last run"
                else:
                    inputs, unknown_after = None, spec.folder
    finally:
        ctx.close()
    return plans
