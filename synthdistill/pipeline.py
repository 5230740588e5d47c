"""Running a pipeline: load its data, then its stages in order through the run layer's step runner.

Each stage is skipped, resumed or re-run by its fingerprint (synthdistill/runs/steps.py); review
decisions change what a stage reading an earlier stage's records sees, and join those fingerprints. The
kept records of the last stage that wrote any become the run's `dataset/`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from synthdistill.config import Pipeline, load_pipeline
from synthdistill.data import load_splits
from synthdistill.errors import ConfigError, RunError, TemplateError
from synthdistill.records import Record, stable_hash
from synthdistill.registry import registry
from synthdistill.runs.context import RunContext
from synthdistill.runs.dataset import save_dataset
from synthdistill.runs.decisions import decisions_digest, load_decisions, reviewed_records
from synthdistill.runs.folder import Manifest, RunFolder, StageManifest
from synthdistill.runs.steps import ProgressHook, Steps
from synthdistill.teachers.costs import BudgetExceeded
from synthdistill.teachers.counters import TeacherCounters
from synthdistill.templates import Templates

log = logging.getLogger(__name__)


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


def splits(pipeline: Pipeline, limit: int | None = None) -> tuple[list[Record], list[Record]]:
    """The pipeline's train and test records, as `data` and `seed` make them (`limit` caps both)."""
    config = pipeline.config
    return load_splits(
        config.data, seed=config.seed, base_dir=pipeline.base_dir, limit=limit, file=str(pipeline.path)
    )


def run_pipeline(pipeline: Pipeline, options: RunOptions) -> Manifest:
    """Run a loaded pipeline to the end, writing everything into its run folder."""
    config = pipeline.config
    templates = check_pipeline(pipeline)
    name = options.run_name or config.name
    folder = RunFolder(Path(config.outputs) / name)
    train, test = splits(pipeline, options.limit)
    previous = _claim_run_folder(folder, pipeline, options)
    started = time.monotonic()
    manifest = Manifest(name=name, pipeline=str(pipeline.path), seed=config.seed, versions=_versions())
    ctx = RunContext.create(pipeline, folder, test, templates=templates)
    # Review decisions (review.jsonl) change what each stage reading an earlier stage's records sees.
    decisions = load_decisions(folder.root)

    def save(entries: list[StageManifest]) -> None:
        manifest.stages = entries
        _record_outputs(manifest, ctx)
        folder.write_manifest(manifest)

    steps = Steps(
        ctx,
        folder.root,
        _base_fingerprint(pipeline, train, test, options.limit),
        previous={entry.folder: entry for entry in previous.stages} if previous else None,
        save=save,
        source=lambda: train,
        source_size=len(train),
        read=lambda path: reviewed_records(path, decisions),
        salt=decisions_digest(decisions),
        # Requests that failed in a stage's last attempt are forgotten when it is attempted again.
        on_start=ctx.failed.begin_stage if ctx.failed else None,
    )
    try:
        for spec in pipeline.stages:
            entry = steps.step(registry("stage").get(spec.name), spec, progress=options.progress)
            if entry.status == "done":
                # A local teacher holds GBs that training and evaluation need more.
                ctx.release_local_models()
                save(steps.entries)
        if steps.records_path is not None:
            save_dataset(steps.records_path, decisions, folder.root / "dataset")
        manifest.status = "done"
    except BudgetExceeded as exc:
        # A clean stop: what was written stays, and a re-run with a higher cap resumes the stage.
        log.warning("%s", exc)
        manifest.status = "stopped"
        manifest.stopped_reason = str(exc)
    except KeyboardInterrupt:
        manifest.status = "interrupted"
        raise
    except BaseException:
        manifest.status = "failed"
        raise
    finally:
        manifest.seconds = round(time.monotonic() - started, 2)
        _add_totals(manifest)
        folder.write_manifest(manifest)
        ctx.close()
    return manifest


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


def _base_fingerprint(pipeline: Pipeline, train: list[Record], test: list[Record], limit: int | None) -> str:
    """What every stage depends on: the seed, the package version and the data itself."""
    data = hashlib.sha256()
    for record in [*train, *test]:
        data.update(record.id.encode())
    return stable_hash(
        pipeline.config.seed, _package_version(), len(train), len(test), data.hexdigest(), limit
    )


def _add_totals(manifest: Manifest) -> None:
    """The run's teacher counters: those of the stages that ran (a skipped stage spent nothing)."""
    ran = [TeacherCounters(**entry.teacher) for entry in manifest.stages if entry.status != "skipped"]
    manifest.teacher = TeacherCounters.total(ran)


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
