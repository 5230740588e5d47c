"""Steps: what a stage is, and the one runner that runs, resumes or skips it by its fingerprint.

A step's fingerprint hashes its own config, the fingerprint of the step before it, and the content of
what it reads (templates, the teacher and student configs, other files). A step whose output is complete
under an unchanged fingerprint is skipped and hands on what it made last time; a change anywhere re-runs
that step and every step after it. An unfinished step resumes: inputs whose outputs are already on disk
are not sent again, and the call cache answers whatever was paid for before a kill.

The pipeline's stages run through a `Steps` over the run folder; the adversarial stage's rounds run
through a `Steps` of their own inside the stage's folder (`Steps.nested`), in exactly the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from synthdistill.config import StageSpec, TeacherConfig
from synthdistill.records import Record, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.folder import RecordWriter, StageManifest, read_records, source_batches, write_atomic
from synthdistill.teachers.costs import BudgetExceeded

if TYPE_CHECKING:
    from synthdistill.runs.context import RunContext

ProgressHook = Callable[[str, int | None, Callable[[], dict[str, Any]]], Callable[[int], None]]
"""Called with (stage label, expected inputs, the stage's teacher counters so far) when a stage starts;
returns a callback for inputs done."""


@dataclass(frozen=True)
class Stage:
    """A named step: its config model and its function over records."""

    name: str
    config: type[BaseModel]
    run: Callable[[Iterable[Record], StageContext], Iterator[Record]]
    """Yields its output records; children of one input are yielded together, inputs in order."""
    summary: str = ""
    inputs: Callable[[Any], list[str]] = field(default=lambda config: [])
    """Names of the templates (or other files) the stage reads, for its fingerprint."""
    batch_input: bool = False
    """Whether the stage needs all its inputs at once (training); then it is not resumed mid-way."""
    writes_records: bool = True
    """Whether the stage writes records; a stage that does not (train, evaluate) passes its inputs on."""
    needs_student: bool = False
    """Whether the stage needs the student trained by an earlier stage (adversarial), so that a dry run,
    in which nothing is trained, cannot run it."""
    uses: tuple[str, ...] = ()
    """Parts of the pipeline it depends on beyond its own config (teacher, student), for its fingerprint."""
    files: Callable[[Any, Path, Path], list[Path]] = field(default=lambda config, base_dir, run_dir: [])
    """Other files whose content the stage's output depends on (a user's critic, a trained classifier),
    given the config, the pipeline file's folder and the run folder; hashed into its fingerprint."""
    # What the preflight checks (synthdistill/preflight.py) know of the stage, before anything runs.
    variables: Callable[[Any], set[str]] = field(default=lambda config: {"record"})
    """Template variables the stage passes besides the fields of the records it reads."""
    adds: Callable[[Any], set[str]] = field(default=lambda config: set())
    """Fields the stage may add to its records' input, for the templates of the stages after it."""
    needs_outputs: Callable[[Any], bool] = field(default=lambda config: False)
    """Whether its input records must carry a teacher's outputs (samples, an answer, a rationale), so
    that a stage which makes them has to come before it."""
    needs_answers: Callable[[Any], bool] = field(default=lambda config: False)
    """Whether its input records must carry an answer, a teacher's or the data's gold one (label-only
    training learns the data's answers)."""
    makes_outputs: bool = False
    """Whether its records carry a teacher's outputs (generate, self_instruct)."""
    needs_gold: bool = False
    """Whether it needs the data's gold answers (the STaR rounds keep what reaches them)."""


class Steps:
    """Steps run in order inside one folder, each skipped, resumed or re-run by its chained fingerprint.

    `entries` lists the steps as run (the manifest's stages); `save` is called whenever they change.
    `ran` says whether any step ran, which makes every later step run too (its input may differ), so
    that a caller running several `Steps` in a row (the adversarial rounds) can pass it on.
    """

    def __init__(
        self,
        ctx: RunContext,
        root: Path,
        fingerprint: str,
        *,
        previous: Mapping[str, StageManifest] | None = None,
        save: Callable[[list[StageManifest]], None] | None = None,
        source: Callable[[], Iterable[Record]] | None = None,
        read: Callable[[Path], Iterable[Record]] = read_records,
        source_size: int | None = None,
        salt: str = "",
        ran: bool = False,
        on_start: Callable[[str], None] | None = None,
        teacher: TeacherConfig | None = None,
    ) -> None:
        """Steps under `root`, chained from `fingerprint`.

        `previous` holds the entries of the last run by folder; `source` gives the first step's inputs and
        `read` reads a later step's inputs from the step file before it; `source_size` is how many records
        `source` gives, for the progress bar; `salt` (the review decisions'
        digest) joins the fingerprint of every step that reads an earlier step's records; `on_start` is
        called with a step's folder name just before the step runs (not when it is skipped); `teacher`
        answers in place of the pipeline's teacher in every step (the STaR rounds' newest student).
        """
        self.ctx = ctx
        self.root = root
        self.fingerprint = fingerprint
        self.previous = dict(previous or {})
        self.entries: list[StageManifest] = []
        self.ran = ran
        self.records_path: Path | None = None
        """The records of the last step that wrote any: what the next step reads."""
        self._save = save or (lambda entries: None)
        self._source = source or (lambda: [])
        self._read = read
        self._source_size = source_size
        self._salt = salt
        self._on_start = on_start or (lambda folder: None)
        self.teacher = teacher

    @classmethod
    def nested(
        cls,
        parent: StageContext,
        folder: Path,
        fingerprint: str,
        ran: bool = False,
        teacher: TeacherConfig | None = None,
    ) -> Steps:
        """Steps inside a stage's folder (a round of the adversarial or star stage), with their own
        manifest.json; `teacher` stands in for the pipeline's teacher in them."""
        path = folder / "manifest.json"
        previous = {}
        if path.is_file():
            for row in json.loads(path.read_text(encoding="utf-8")):
                old = StageManifest.model_validate(row)
                previous[old.folder] = old

        def save(entries: list[StageManifest]) -> None:
            write_atomic(path, json.dumps([entry.model_dump(mode="json") for entry in entries], indent=1))

        return cls(parent.run, folder, fingerprint, previous=previous, save=save, ran=ran, teacher=teacher)

    def records_file(self, folder: str) -> Path:
        """Where the step in `folder` (NN-<name>) writes its records."""
        return self.root / folder / "records.jsonl"

    def step(
        self,
        stage: Stage,
        config: BaseModel | StageSpec,
        inputs: Callable[[], Iterable[Record]] | None = None,
        *,
        progress: ProgressHook | None = None,
    ) -> StageManifest:
        """Run (or skip) `stage` with `config` (or its spec as a pipeline file declared it); its records go
        to <root>/NN-<name>/records.jsonl.

        Its inputs are `inputs()` when given, else the records of the last step that wrote any (the
        `source` for the first).
        """
        spec = config
        if not isinstance(spec, StageSpec):
            spec = StageSpec(name=stage.name, index=len(self.entries) + 1, config=spec)
        upstream = self.fingerprint
        self.fingerprint, parts = fingerprint_parts(stage, spec, upstream, self.ctx, self.teacher)
        reads_records = self.records_path is not None
        if self._salt and reads_records:
            self.fingerprint = stable_hash(self.fingerprint, self._salt)
            upstream = stable_hash(upstream, self._salt)
        parts["review decisions"] = self._salt if reads_records else ""
        entry = StageManifest(name=spec.name, folder=spec.folder, fingerprint=self.fingerprint, parts=parts)
        self.entries.append(entry)
        old = self.previous.get(spec.folder)
        inputs_path = self.records_path
        if stage.writes_records:
            self.records_path = self.records_file(spec.folder)
        on_disk = self.records_path is None or self.records_path.exists()
        skip, resumable = _reuse(old, self.fingerprint, stage, on_disk, self.ran)
        if skip and old is not None:
            _skip(entry, old, self.ctx)
            self._save(self.entries)
            return entry
        entry.reason = _why_it_runs(old, entry, on_disk, self.ran)
        self.ran = True
        entry.status = "running"
        self._save(self.entries)
        self._on_start(spec.folder)
        if inputs is None:
            inputs = self._source if inputs_path is None else lambda: self._read(inputs_path)
        # For the progress bar's ETA: what the step before handed on.
        expected = self.entries[-2].records_out if len(self.entries) > 1 else self._source_size
        folder = self.root / spec.folder
        folder.mkdir(parents=True, exist_ok=True)
        sctx = StageContext(self.ctx, spec, folder, upstream=upstream, teacher=self.teacher)
        out = self.records_path if stage.writes_records else None
        try:
            _run(stage, entry, sctx, inputs(), out, resumable, progress, expected)
        except BaseException as exc:
            entry.status = "stopped" if isinstance(exc, BudgetExceeded) else "failed"
            raise
        finally:
            self._save(self.entries)
        return entry


def fingerprint_parts(
    stage: Stage, spec: StageSpec, previous: str, ctx: RunContext, teacher: TeacherConfig | None = None
) -> tuple[str, dict[str, str]]:
    """The hash of a step's config, the step before it, and the content of everything it reads; and a
    short hash of each of those parts, so that a re-run can say what changed. `teacher` is the one that
    stands in for the pipeline's."""
    pipeline = ctx.pipeline
    templates = {name: ctx.templates.hash(name) for name in stage.inputs(spec.config)}
    stand_in = {"teacher": teacher} if teacher is not None else {}
    models = {
        part: _fingerprinted(stand_in.get(part) or getattr(pipeline.config, part)) for part in stage.uses
    }
    files = {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        for path in stage.files(spec.config, pipeline.base_dir, ctx.run.root)
    }
    options = spec.config.model_dump(mode="json")
    parts = {
        "options": stable_hash(options),
        "an earlier stage": previous,
        **{f"template {name}": digest for name, digest in templates.items()},
        **{f"the {part}": stable_hash(value) for part, value in models.items()},
        **{f"file {Path(path).name}": stable_hash(digest) for path, digest in files.items()},
    }
    return stable_hash(spec.name, options, previous, templates, models, files), parts


def _run(
    stage: Stage,
    entry: StageManifest,
    sctx: StageContext,
    inputs: Iterable[Record],
    out_path: Path | None,
    resumable: bool,
    progress: ProgressHook | None,
    expected: int | None,
) -> None:
    run = sctx.run
    started = time.monotonic()
    before = run.engine_stats()
    done: set[str] = set()
    done_inputs = 0
    # Records go to a partial file that replaces the stage file only when the stage completes (or stops
    # cleanly, at a budget): a run that fails never damages the last good one's records.
    partial = partial_file(out_path) if out_path is not None else None
    if out_path is not None and partial is not None:
        if not resumable:
            partial.unlink(missing_ok=True)
        elif not partial.exists() and out_path.exists():
            shutil.copyfile(out_path, partial)  # the same stage's earlier output, resumed
        for record in read_records(partial):
            done_inputs += record.source_id not in done
            done.update(filter(None, (record.id, record.source_id)))
            entry.records_out += record.kept
        sctx.written = partial
    artifacts_before = dict(run.artifacts)
    metrics_before = dict(run.metrics)
    counted = _Counter()
    fresh = (r.model_copy(update={"source_id": r.id}) for r in counted.count(inputs) if r.id not in done)
    advance = None
    if progress:
        total = None if expected is None else max(expected - done_inputs, 0)
        advance = progress(entry.folder, total, lambda: run.engine_stats().since(before))
    outputs = stage.run(fresh, sctx)
    try:
        if out_path is None or partial is None:
            for _ in outputs:
                if advance:
                    advance(1)
        else:
            try:
                with RecordWriter(partial) as writer:
                    for batch in source_batches(outputs):
                        writer.write(batch)
                        entry.records_out += sum(1 for r in batch if r.kept)
                        if advance:
                            advance(len({r.source_id for r in batch}))
            except BudgetExceeded:
                os.replace(partial, out_path)
                raise
            os.replace(partial, out_path)
    finally:
        # Also when the stage stops early (a budget, a kill): the manifest says what it spent.
        entry.teacher = run.engine_stats().since(before)
        entry.seconds = round(time.monotonic() - started, 2)
    entry.records_in = counted.n
    if out_path is None:
        entry.records_out = counted.n
    entry.details = sctx.details
    # Kept in the stage's entry so that a skipped stage hands them on as if it had run.
    new_artifacts = {k: str(v) for k, v in run.artifacts.items() if artifacts_before.get(k) != v}
    new_metrics = {k: v for k, v in run.metrics.items() if metrics_before.get(k) != v}
    if new_artifacts:
        entry.details["artifacts"] = new_artifacts
    if new_metrics:
        entry.details["metrics"] = new_metrics
    entry.status = "done"


def partial_file(records_file: Path) -> Path:
    """Where a running stage writes its records until it completes (NN-<stage>/records.jsonl.partial)."""
    return records_file.with_name(records_file.name + ".partial")


def _reuse(
    old: StageManifest | None, fingerprint: str, stage: Stage, on_disk: bool, upstream_ran: bool
) -> tuple[bool, bool]:
    """Whether a stage's last run stands (skip it), and else whether its records on disk can be resumed.

    A stage file deleted by hand makes the stage run again rather than hand on nothing; a stage that ran
    makes every later stage run, since its output may differ from last time; a stage whose requests
    failed after every retry runs again in full (the cache answers the rest).
    """
    same = old is not None and old.fingerprint == fingerprint
    had_failures = old is not None and old.teacher.get("failures", 0) > 0
    finished = old is not None and old.status in ("done", "skipped")
    skip = same and finished and on_disk and not upstream_ran and not had_failures
    return skip, same and not stage.batch_input and not had_failures


def _why_it_runs(old: StageManifest | None, entry: StageManifest, on_disk: bool, upstream_ran: bool) -> str:
    """Why a step runs rather than being skipped, in a few words for the summary."""
    if old is None:
        return "first run"
    if old.fingerprint != entry.fingerprint:
        changed = [
            part for part in {**old.parts, **entry.parts} if old.parts.get(part) != entry.parts.get(part)
        ]
        if not old.parts:
            return "changed"  # a manifest written before parts were kept
        # An earlier stage's change shows as its own; name what changed here first.
        own = [part for part in changed if part != "an earlier stage"] or changed
        return ", ".join(own) + " changed"
    if old.teacher.get("failures", 0) > 0:
        return "requests failed last time"
    if old.status not in ("done", "skipped"):
        return f"resumed ({old.status})"
    if upstream_ran:
        return "an earlier stage ran"
    if not on_disk:
        return "its records were deleted"
    return "resumed"


def _skip(entry: StageManifest, old: StageManifest, ctx: RunContext) -> None:
    """Mark a stage skipped and hand on what it made last time, as if it had run."""
    entry.status = "skipped"
    entry.records_in, entry.records_out, entry.details = old.records_in, old.records_out, old.details
    ctx.artifacts.update({k: Path(v) for k, v in old.details.get("artifacts", {}).items()})
    ctx.metrics.update(old.details.get("metrics", {}))


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def count(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.n += 1
            yield record


def _fingerprinted(part: BaseModel) -> dict[str, Any]:
    """A config part as stage fingerprints see it: without the fields that cannot change a result."""
    return part.model_dump(mode="json", exclude=set(getattr(part, "NOT_FINGERPRINTED", ())))
