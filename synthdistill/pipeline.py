"""Running a pipeline: stages in order, each skipped, resumed or re-run by its fingerprint.

A stage's fingerprint hashes its own config, the fingerprint of the stage before it, and the
content of what it reads (templates, data files, the package version). A stage whose output is
complete under an unchanged fingerprint is skipped; a change anywhere re-runs that stage and every
stage after it. An unfinished stage resumes: inputs whose outputs are already on disk are not sent
again, and the call cache answers whatever was paid for before a kill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from synthdistill.config import Pipeline, StageSpec, load_pipeline
from synthdistill.context import RunContext, StageContext
from synthdistill.costs import Budget, BudgetExceeded
from synthdistill.data import load_splits
from synthdistill.devices import resolve_device
from synthdistill.errors import ConfigError, RunError, TemplateError
from synthdistill.records import DATASET_COLUMNS, Record, dataset_row, stable_hash
from synthdistill.registry import registry
from synthdistill.review.decisions import Decision, decisions_digest, load_decisions, reviewed_records
from synthdistill.runfolder import (
    FailedRequests,
    Manifest,
    RecordWriter,
    RunFolder,
    StageManifest,
    TeacherTotals,
    read_records,
)
from synthdistill.stages import Stage
from synthdistill.templates import Templates

log = logging.getLogger(__name__)

# Records are made durable in batches of this many, or after this many seconds, whichever comes first.
WRITE_BATCH = 32
WRITE_INTERVAL_S = 2.0

ProgressHook = Callable[[str, int | None, Callable[[], dict[str, Any]]], Callable[[int], None]]
"""Called with (stage label, expected inputs, the stage's teacher counters so far) when a stage starts;
returns a callback for inputs done."""


@dataclass
class RunOptions:
    """How to run a pipeline, beyond the pipeline file itself."""

    overrides: list[str] | None = None
    limit: int | None = None
    run_name: str | None = None
    force: bool = False
    resume: bool = False
    progress: ProgressHook | None = None


def run(path: str | Path, **options: Any) -> Manifest:
    """Run the pipeline file at `path` and return its manifest (the Python API of `synthdistill run`)."""
    return run_pipeline(load_pipeline(path, options.pop("overrides", None)), RunOptions(**options))


def check_pipeline(pipeline: Pipeline) -> Templates:
    """Check what validation of the file alone cannot: every template a stage reads exists and parses."""
    templates = Templates.for_pipeline(pipeline.base_dir)
    for spec in pipeline.stages:
        stage = registry("stage").get(spec.name)
        if stage.needs_student and not any(s.name == "train" for s in pipeline.stages[: spec.index - 1]):
            raise ConfigError(
                f"{spec.name} needs a student to work on; put a train stage before it",
                file=str(pipeline.path),
                key=f"stages[{spec.index - 1}].{spec.name}",
            )
        for name in stage.inputs(spec.config):
            try:
                templates.source(name)
            except TemplateError as exc:
                raise ConfigError(
                    str(exc), file=str(pipeline.path), key=f"stages[{spec.index - 1}].{spec.name}"
                ) from None
    return templates


def run_pipeline(pipeline: Pipeline, options: RunOptions) -> Manifest:
    """Run a loaded pipeline to the end, writing everything into its run folder."""
    config = pipeline.config
    templates = check_pipeline(pipeline)
    name = options.run_name or config.name
    folder = RunFolder(Path(config.outputs) / name)
    train, test = load_splits(
        config.data,
        seed=config.seed,
        base_dir=pipeline.base_dir,
        limit=options.limit,
        file=str(pipeline.path),
    )
    previous = _claim_run_folder(folder, pipeline, options)
    started = time.monotonic()
    manifest = Manifest(name=name, pipeline=str(pipeline.path), seed=config.seed, versions=_versions())
    ctx = RunContext(
        pipeline=pipeline,
        run=folder,
        templates=templates,
        test_records=test,
        device=resolve_device(config.device),
        budget=Budget(config.max_cost_usd),
        failed=FailedRequests(folder.failed_requests_path),
    )
    fingerprint = _base_fingerprint(pipeline, train, test, options.limit)
    # Review decisions (review.jsonl) change what each stage reading an earlier stage's records sees.
    decisions = load_decisions(folder.root)
    review_digest = decisions_digest(decisions)
    records_path: Path | None = None
    upstream_ran = False
    try:
        for spec in pipeline.stages:
            stage: Stage = registry("stage").get(spec.name)
            upstream = fingerprint
            fingerprint = _stage_fingerprint(stage, spec, fingerprint, ctx, pipeline)
            if review_digest and records_path is not None:
                fingerprint = stable_hash(fingerprint, review_digest)
                upstream = stable_hash(upstream, review_digest)
            entry = StageManifest(name=spec.name, folder=spec.folder, fingerprint=fingerprint)
            manifest.stages.append(entry)
            old = _previous_entry(previous, spec)
            inputs_path = records_path
            if stage.writes_records:
                records_path = folder.stage_dir(spec.folder) / "records.jsonl"
            on_disk = records_path is None or records_path.exists()
            skip, resumable = _reuse(old, fingerprint, stage, on_disk, upstream_ran)
            if skip and old is not None:
                _skip(entry, old, ctx)
                _record_outputs(manifest, ctx)
                folder.write_manifest(manifest)
                continue
            upstream_ran = True
            entry.status = "running"
            folder.write_manifest(manifest)
            assert ctx.failed is not None
            ctx.failed.begin_stage(spec.folder)
            inputs = train if inputs_path is None else reviewed_records(inputs_path, decisions)
            # For the progress bar's ETA: the data, or what the stage before handed on.
            expected = len(train) if inputs_path is None else manifest.stages[-2].records_out
            _run_stage(
                stage,
                spec,
                entry,
                StageContext(ctx, spec, folder.stage_dir(spec.folder), upstream=upstream),
                inputs,
                records_path if stage.writes_records else None,
                resumable,
                options.progress,
                expected,
            )
            # A local teacher holds GBs that training and evaluation need more.
            ctx.release_local_models()
            _record_outputs(manifest, ctx)
            folder.write_manifest(manifest)
        if records_path is not None:
            _save_dataset(records_path, folder.root / "dataset", decisions)
        manifest.status = "done"
    except BudgetExceeded as exc:
        # A clean stop: what was written stays, and a re-run with a higher cap resumes the stage.
        log.warning("%s", exc)
        manifest.status = "stopped"
        manifest.stopped_reason = str(exc)
        _mark_running(manifest, "stopped")
    except KeyboardInterrupt:
        manifest.status = "interrupted"
        _mark_running(manifest, "failed")
        raise
    except BaseException:
        manifest.status = "failed"
        _mark_running(manifest, "failed")
        raise
    finally:
        manifest.seconds = round(time.monotonic() - started, 2)
        _add_totals(manifest)
        folder.write_manifest(manifest)
        ctx.close()
    return manifest


def _run_stage(
    stage: Stage,
    spec: StageSpec,
    entry: StageManifest,
    sctx: StageContext,
    inputs: Iterable[Record],
    out_path: Path | None,
    resumable: bool,
    progress: ProgressHook | None,
    expected: int | None,
) -> None:
    started = time.monotonic()
    before = sctx.run.engine_stats()
    done: set[str] = set()
    done_inputs = 0
    if out_path is not None:
        if resumable:
            for record in read_records(out_path):
                done_inputs += record.source_id not in done
                done.update(filter(None, (record.id, record.source_id)))
                entry.records_out += record.kept
        else:
            out_path.unlink(missing_ok=True)
    artifacts_before = dict(sctx.run.artifacts)
    metrics_before = dict(sctx.run.metrics)
    counted = _Counter()
    fresh = (r.model_copy(update={"source_id": r.id}) for r in counted.count(inputs) if r.id not in done)
    advance = None
    if progress:
        total = None if expected is None else max(expected - done_inputs, 0)
        advance = progress(spec.folder, total, lambda: sctx.run.engine_stats().since(before))
    outputs = stage.run(fresh, sctx)
    try:
        if out_path is None:
            for _ in outputs:
                if advance:
                    advance(1)
        else:
            with RecordWriter(out_path) as writer:
                for batch in _batches_at_source_boundaries(outputs, WRITE_BATCH):
                    writer.write(batch)
                    entry.records_out += sum(1 for r in batch if r.kept)
                    if advance:
                        advance(len({r.source_id for r in batch}))
    finally:
        # Also when the stage stops early (a budget, a kill): the manifest says what it spent.
        entry.teacher = sctx.run.engine_stats().since(before)
        entry.seconds = round(time.monotonic() - started, 2)
    entry.records_in = counted.n
    if out_path is None:
        entry.records_out = counted.n
    entry.details = sctx.details
    # Kept in the stage's entry so that a skipped stage hands them on as if it had run.
    new_artifacts = {k: str(v) for k, v in sctx.run.artifacts.items() if artifacts_before.get(k) != v}
    new_metrics = {k: v for k, v in sctx.run.metrics.items() if metrics_before.get(k) != v}
    if new_artifacts:
        entry.details["artifacts"] = new_artifacts
    if new_metrics:
        entry.details["metrics"] = new_metrics
    entry.status = "done"


class SubRun:
    """Stages run inside one stage's folder (the adversarial stage's rounds), each skipped, resumed or re-run
    by its fingerprint exactly as the pipeline's own stages are.

    Its manifest (`folder`/manifest.json) lists the steps as run; a step is skipped when its fingerprint,
    chained from `fingerprint`, is unchanged, its records are on disk and no step before it ran. `ran`
    says whether any step ran, so that a caller running several sub-runs in a row (rounds) can pass it on.
    """

    def __init__(self, parent: StageContext, folder: Path, fingerprint: str, ran: bool = False) -> None:
        self.ctx = parent.run
        self.folder = folder
        self.fingerprint = fingerprint
        self.ran = ran
        self.entries: list[StageManifest] = []
        self._path = folder / "manifest.json"
        self._previous: dict[str, StageManifest] = {}
        if self._path.is_file():
            for entry in json.loads(self._path.read_text(encoding="utf-8")):
                old = StageManifest.model_validate(entry)
                self._previous[old.folder] = old

    def step(self, stage: Stage, config: BaseModel, inputs: Callable[[], Iterable[Record]]) -> StageManifest:
        """Run (or skip) `stage` with `config` on `inputs()`; its records go to NN-<name>/records.jsonl."""
        spec = StageSpec(name=stage.name, index=len(self.entries) + 1, config=config)
        upstream = self.fingerprint
        self.fingerprint = _stage_fingerprint(stage, spec, upstream, self.ctx, self.ctx.pipeline)
        entry = StageManifest(name=spec.name, folder=spec.folder, fingerprint=self.fingerprint)
        self.entries.append(entry)
        old = self._previous.get(spec.folder)
        out = self.records_path(entry) if stage.writes_records else None
        skip, resumable = _reuse(old, self.fingerprint, stage, out is None or out.exists(), self.ran)
        if skip and old is not None:
            _skip(entry, old, self.ctx)
            self._write()
            return entry
        self.ran = True
        entry.status = "running"
        self._write()
        (self.folder / spec.folder).mkdir(parents=True, exist_ok=True)
        sctx = StageContext(self.ctx, spec, self.folder / spec.folder, upstream=upstream)
        try:
            _run_stage(stage, spec, entry, sctx, inputs(), out, resumable, None, None)
        finally:
            if entry.status == "running":
                entry.status = "failed"
            self._write()
        return entry

    def records_path(self, entry: StageManifest) -> Path:
        """Where a step's records are."""
        return self.folder / entry.folder / "records.jsonl"

    def _write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        rows = [entry.model_dump(mode="json") for entry in self.entries]
        scratch = self._path.with_name(f".{self._path.name}.tmp")
        scratch.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        scratch.replace(self._path)


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


def _batches_at_source_boundaries(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Batches of `size` records (or `WRITE_INTERVAL_S` seconds) that never split one input's outputs."""
    batch: list[Record] = []
    started = time.monotonic()
    try:
        for record in records:
            full = len(batch) >= size or time.monotonic() - started >= WRITE_INTERVAL_S
            if batch and full and record.source_id != batch[-1].source_id:
                yield batch
                batch = []
                started = time.monotonic()
            batch.append(record)
    except BaseException:
        # The stage stopped (a budget, a crash, Ctrl-C): keep every input whose outputs are all here, and
        # leave the last one, which may be cut short, to the resume.
        last = batch[-1].source_id if batch else None
        complete = [r for r in batch if r.source_id != last]
        if complete:
            yield complete
        raise
    if batch:
        yield batch


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def count(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.n += 1
            yield record


def _skip(entry: StageManifest, old: StageManifest, ctx: RunContext) -> None:
    """Mark a stage skipped and hand on what it made last time, as if it had run."""
    entry.status = "skipped"
    entry.records_in, entry.records_out, entry.details = old.records_in, old.records_out, old.details
    ctx.artifacts.update({k: Path(v) for k, v in old.details.get("artifacts", {}).items()})
    ctx.metrics.update(old.details.get("metrics", {}))


def _record_outputs(manifest: Manifest, ctx: RunContext) -> None:
    """Copy the run's artifacts, metrics and teacher totals into the manifest."""
    manifest.artifacts.update({k: str(v) for k, v in ctx.artifacts.items()})
    manifest.metrics.update(ctx.metrics)
    _add_totals(manifest)


def _claim_run_folder(folder: RunFolder, pipeline: Pipeline, options: RunOptions) -> Manifest | None:
    """The previous manifest of this run, after checking the folder belongs to this pipeline."""
    previous = folder.read_manifest()
    reuse = options.resume or options.force
    if previous is not None and not reuse and Path(previous.pipeline).resolve() != pipeline.path:
        raise RunError(
            f"run folder {folder.root} holds a run of {previous.pipeline}, not {pipeline.path}; "
            "pass --resume to reuse what fits, --force to start it over, or --run-name for a new run"
        )
    if options.force and folder.root.exists():
        for child in folder.root.iterdir():
            if child.is_dir() and child.name[:2].isdigit():
                shutil.rmtree(child)
        previous = None
    folder.root.mkdir(parents=True, exist_ok=True)
    resolved = yaml.safe_dump(pipeline.config.model_dump(mode="json"), sort_keys=False)
    (folder.root / "pipeline.yaml").write_text(resolved, encoding="utf-8")
    return previous


def _previous_entry(previous: Manifest | None, spec: StageSpec) -> StageManifest | None:
    if previous is None:
        return None
    return next((s for s in previous.stages if s.folder == spec.folder), None)


def _base_fingerprint(pipeline: Pipeline, train: list[Record], test: list[Record], limit: int | None) -> str:
    """What every stage depends on: the seed, the package version and the data itself."""
    data = hashlib.sha256()
    for record in [*train, *test]:
        data.update(record.id.encode())
    return stable_hash(
        pipeline.config.seed, _package_version(), len(train), len(test), data.hexdigest(), limit
    )


def _stage_fingerprint(
    stage: Stage, spec: StageSpec, previous: str, ctx: RunContext, pipeline: Pipeline
) -> str:
    templates = {name: ctx.templates.hash(name) for name in stage.inputs(spec.config)}
    models = {part: _fingerprinted(getattr(pipeline.config, part)) for part in stage.uses}
    files = {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        for path in stage.files(spec.config, pipeline.base_dir, ctx.run.root)
    }
    return stable_hash(spec.name, spec.config.model_dump(mode="json"), previous, templates, models, files)


def _fingerprinted(part: BaseModel) -> dict[str, Any]:
    """A config part as stage fingerprints see it: without the fields that cannot change a result."""
    return part.model_dump(mode="json", exclude=set(getattr(part, "NOT_FINGERPRINTED", ())))


def _add_totals(manifest: Manifest) -> None:
    totals: dict[str, float] = {}
    for entry in manifest.stages:
        if entry.status == "skipped":
            continue
        for key, value in entry.teacher.items():
            totals[key] = totals.get(key, 0) + value
    manifest.teacher = TeacherTotals(**{k: totals.get(k, 0) for k in TeacherTotals.model_fields})


def _mark_running(manifest: Manifest, status: str) -> None:
    for entry in manifest.stages:
        if entry.status == "running":
            entry.status = status  # type: ignore[assignment]


def _save_dataset(records_path: Path, target: Path, decisions: dict[str, Decision]) -> None:
    """The kept records as a Hugging Face dataset (save_to_disk) plus one parquet file.

    Rows stream from the stage file into Arrow (memory stays flat however many records there are), into
    a temporary folder that replaces `target` only once complete, so a kill never leaves half a dataset.
    """
    import tempfile

    from datasets import Dataset, Features, Value

    features = Features({name: Value(kind) for name, kind in DATASET_COLUMNS.items()})
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    with tempfile.TemporaryDirectory(prefix="synthdistill-dataset-") as cache_dir:
        if next(reviewed_records(records_path, decisions), None) is None:
            # A generator that yields nothing is an error to datasets; an empty run is not.
            dataset = Dataset.from_dict({name: [] for name in DATASET_COLUMNS}, features=features)
        else:
            dataset = Dataset.from_generator(
                _dataset_rows,
                gen_kwargs={"records_path": records_path, "decisions": decisions},
                features=features,
                cache_dir=cache_dir,
            )
        # One shard at least: datasets writes none for an empty dataset and then cannot load it back.
        dataset.save_to_disk(str(tmp), num_shards=max(1, len(dataset) // 100_000 + 1))
        dataset.to_parquet(str(tmp / "train.parquet"))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def _dataset_rows(records_path: Path, decisions: dict[str, Decision]) -> Iterator[dict[str, Any]]:
    for record in reviewed_records(records_path, decisions):
        yield dataset_row(record)


def _package_version() -> str:
    try:
        return version("synthdistill")
    except PackageNotFoundError:
        return "0+unknown"


def _versions() -> dict[str, str]:
    found = {}
    for package in ("synthdistill", "torch", "transformers", "trl", "peft", "datasets", "openai"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found
