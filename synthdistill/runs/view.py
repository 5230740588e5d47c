"""A finished (or running) run folder as the review, inspect and export commands read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from synthdistill.errors import RunError
from synthdistill.runs.folder import Manifest, RunFolder


@dataclass(frozen=True)
class StageFile:
    """A stage that writes records, and its records.jsonl."""

    folder: str
    name: str
    path: Path


@dataclass(frozen=True)
class RunView:
    """The run folder, its manifest and the stage files it holds, in pipeline order."""

    root: Path
    manifest: Manifest
    stages: list[StageFile]

    @property
    def last_stage(self) -> StageFile | None:
        """The last stage that wrote records: what training read and what dataset/ holds."""
        return self.stages[-1] if self.stages else None

    def stage(self, folder: str) -> StageFile:
        """The stage file of `folder` (NN-<stage>)."""
        for stage in self.stages:
            if stage.folder == folder:
                return stage
        names = ", ".join(s.folder for s in self.stages) or "none"
        raise RunError(f"run {self.root} has no stage file {folder!r}; stages with records: {names}")


def open_run(path: str | Path) -> RunView:
    """Read a run folder's manifest and find its stage files; a clear error when it is not a run."""
    root = Path(path)
    if not root.is_dir():
        raise RunError(
            f"run folder {root} does not exist; pass the folder `synthdistill run` printed, "
            "such as outputs/<name>"
        )
    try:
        manifest = RunFolder(root).read_manifest()
    except (ValidationError, ValueError) as exc:
        raise RunError(f"{root / 'manifest.json'} cannot be read ({type(exc).__name__}); run again") from None
    if manifest is None:
        raise RunError(
            f"{root} is not a run folder (no manifest.json); pass the folder `synthdistill run` printed, "
            "such as outputs/<name>"
        )
    stages = [
        StageFile(folder=entry.folder, name=entry.name, path=root / entry.folder / "records.jsonl")
        for entry in manifest.stages
        if (root / entry.folder / "records.jsonl").exists()
    ]
    return RunView(root=root, manifest=manifest, stages=stages)
