"""Running a pipeline: load its data, then its stages in order through the run layer's step runner.

Each stage is skipped, resumed or re-run by its fingerprint (synthdistill/runs/steps.py); review
decisions change what a stage reading an earlier stage's records sees, and join those fingerprints. The
kept records of the last stage that wrote any become the run's `dataset/`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from synthdistill import preflight
from synthdistill.config import Pipeline, load_pipeline, run_name_problem
from synthdistill.errors import ConfigError, RunError
from synthdistill.records import Record, stable_hash
from synthdistill.registry import registry
from synthdistill.runs.context import RunContext
from synthdistill.runs.dataset import save_dataset
from synthdistill.runs.decisions import decisions_digest, load_decisions, reviewed_records
from synthdistill.runs.folder import Manifest, RunFolder, StageManifest, write_atomic
from synthdistill.runs.steps import ProgressHook, Steps
from synthdistill.teachers.costs import BudgetExceeded
from synthdistill.teachers.counters import TeacherCounters

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
    on_claim: Callable[[Path], None] | None = None
    """Called with the run folder once the checks have passed and the run has claimed it."""
    clean: bool = False
    """Whether to remove, once the run is done, the stage folders that the pipeline no longer has."""

    def __post_init__(self) -> None:
        # The run folder is outputs/<run_name>: a path in it would write elsewhere.
        problem = run_name_problem(self.run_name) if self.run_name is not None else None
        if problem:
            raise ConfigError(problem, key="run_name")


def run(path: str | Path, **options: Any) -> Manifest:
    """Run the pipeline file at `path` and return its manifest (the Python API of `synthdistill run`)."""
    return run_pipeline(load_pipeline(path, options.pop("overrides", None)), RunOptions(**options))


def run_pipeline(pipeline: Pipeline, options: RunOptions) -> Manifest:
    """Run a loaded pipeline to the end, writing everything into its run folder."""
    config = pipeline.config
    # Every check that needs no model call, before the run folder is touched or anything is paid for.
    checked = preflight.check(pipeline, options.limit)
    train, test = checked.train, checked.test
    name = options.run_name or config.name
    folder = RunFolder(Path(config.outputs) / name)
    previous = _claim_run_folder(folder, pipeline, options)
    if options.on_claim is not None:
        options.on_claim(folder.root)
    started = time.monotonic()
    manifest = Manifest(
        name=name, pipeline=str(pipeline.path), seed=config.seed, limit=options.limit, versions=_versions()
    )
    ctx = RunContext.create(
        pipeline, folder, test, templates=checked.templates, limit=options.limit, train_records=train
    )
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
        manifest.warnings = [*checked.notes, *_empty(manifest, test)]
        manifest.status = "done"
        if options.clean:
            for stale in stale_stage_folders(folder.root, pipeline):
                log.info("removing %s: the pipeline has no stage %s any more", stale, stale.name)
                shutil.rmtree(stale)
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


def _empty(manifest: Manifest, test: list[Record]) -> list[str]:
    """What a run that ended with nothing to show must say: a stage that got no records, no test items."""
    said = []
    for entry in manifest.stages:
        if entry.name == "train" and entry.details.get("records", entry.records_in) == 0:
            said.append(
                f"{entry.folder} got no records to train on, so no student was trained; loosen the filters "
                "or generate more (n, data.split.train)"
            )
        if entry.name == "evaluate" and not test:
            said.append(f"{entry.folder} had no test items (data.split.test); nothing was evaluated")
    writers = [entry for entry in manifest.stages if registry("stage").get(entry.name).writes_records]
    if writers and writers[-1].records_out == 0:
        said.append(f"no record was kept by {writers[-1].folder}; the dataset is empty")
    return said


def stale_stage_folders(root: Path, pipeline: Pipeline) -> list[Path]:
    """The stage folders (NN-<stage>) in the run folder `root` that `pipeline` no longer has."""
    if not root.is_dir():
        return []
    current = {spec.folder for spec in pipeline.stages}
    stages = set(registry("stage").names())
    return sorted(
        child
        for child in root.iterdir()
        if (match := _STAGE_FOLDER.fullmatch(child.name))
        and match.group(1) in stages
        and child.name not in current
        and child.is_dir()
        and not child.is_symlink()
    )


# What `StageSpec.folder` names (with a registered stage's name): no other folder is taken for a stage's.
_STAGE_FOLDER = re.compile(r"\d{2,}-(\w+)")


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
    write_atomic(folder.root / "pipeline.yaml", resolved)
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
