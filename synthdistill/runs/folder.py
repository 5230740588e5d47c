"""The run folder: outputs/<name>/ with its manifest, one folder per stage, and the kept dataset.

Writes are made to survive a kill: records are appended in batches, flushed and fsync'd (a reader
drops a torn last line); the manifest is written to a temporary file and renamed over the old one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.records import Record
from synthdistill.teachers.counters import TeacherCounters

# A stage's records are made durable in batches of this many, or after this many seconds, whichever
# comes first.
WRITE_BATCH = 32
WRITE_INTERVAL_S = 2.0

SCHEMA_VERSION = 1


class StageManifest(BaseModel):
    """One stage as run."""

    model_config = ConfigDict(extra="forbid")

    name: str
    folder: str
    fingerprint: str = ""
    parts: dict[str, str] = Field(
        default_factory=dict, description="A hash of each part of the fingerprint, to say what changed."
    )
    reason: str = Field("", description="Why the stage ran rather than being skipped.")
    status: Literal["pending", "running", "done", "skipped", "failed", "stopped"] = "pending"
    records_in: int = 0
    records_out: int = 0
    seconds: float = 0.0
    teacher: dict[str, int | float] = Field(
        default_factory=dict, description="Engine counters during this stage (cost_usd in USD)."
    )
    details: dict[str, Any] = Field(default_factory=dict, description="What the stage reports of itself.")


class Manifest(BaseModel):
    """What a run did: written after each stage so a reader sees progress."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: str
    pipeline: str = Field(description="Path of the pipeline file as given.")
    seed: int = 0
    status: Literal["running", "done", "failed", "interrupted", "stopped"] = "running"
    stopped_reason: str | None = Field(None, description="Why a run stopped early (a budget), if it did.")
    limit: int | None = Field(None, description="The --limit the run was made with (items of each split).")
    warnings: list[str] = Field(
        default_factory=list,
        description="What makes a finished run end with exit 1: data that did not fill the split, a stage "
        "that got no records, nothing kept.",
    )
    stages: list[StageManifest] = Field(default_factory=list)
    teacher: TeacherCounters = Field(default_factory=TeacherCounters)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict, description="Named outputs: student model path.")
    versions: dict[str, str] = Field(default_factory=dict, description="Package versions.")
    seconds: float = 0.0


class RunFolder:
    """Paths and safe writes inside one run folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def manifest_path(self) -> Path:
        """outputs/<name>/manifest.json."""
        return self.root / "manifest.json"

    @property
    def failed_requests_path(self) -> Path:
        """outputs/<name>/failed_requests.jsonl: requests that failed after every retry, with the reason."""
        return self.root / "failed_requests.jsonl"

    def stage_dir(self, folder: str) -> Path:
        """The folder of a stage (NN-<stage>), created on demand."""
        path = self.root / folder
        path.mkdir(parents=True, exist_ok=True)
        return path

    def read_manifest(self) -> Manifest | None:
        """The manifest, or None if the run has none yet."""
        if not self.manifest_path.exists():
            return None
        return Manifest.model_validate_json(self.manifest_path.read_text(encoding="utf-8"))

    def write_manifest(self, manifest: Manifest) -> None:
        """Replace the manifest atomically."""
        write_atomic(self.manifest_path, manifest.model_dump_json(indent=2))


def shareable_path(path: str) -> str:
    """A path as a card may show it: relative to the working directory, else the file name alone (a
    card is published; the local folders it was made in are nobody else's business)."""
    given = Path(path)
    if not given.is_absolute():
        return str(given)
    try:
        return str(given.relative_to(Path.cwd()))
    except ValueError:
        return given.name


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it and rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RecordWriter:
    """Appends records to a JSONL file in batches, each flushed and fsync'd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        trim_torn_tail(path)
        self._handle = path.open("a", encoding="utf-8")

    def write(self, records: Iterable[Record]) -> None:
        """Append a batch of records and make it durable."""
        text = "".join(record.model_dump_json() + "\n" for record in records)
        if text:
            self._handle.write(text)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FailedRequests:
    """outputs/<run>/failed_requests.jsonl, one line a request that failed after every retry.

    It holds the latest attempt of each stage: when a stage runs again, its old lines go first, so the
    file lists what is still missing. Lines carry the rendered messages (never a key: keys live only in
    the environment and in request headers).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stage = ""
        self._lock = threading.Lock()  # engines report from their own loop threads

    def begin_stage(self, stage: str) -> None:
        """Forget `stage`'s earlier failures: it is about to retry them."""
        self.stage = stage
        if not self.path.exists():
            return
        kept = [line for line in _complete_lines(self.path) if json.loads(line).get("stage") != stage]
        if kept:
            write_atomic(self.path, "".join(kept))
        else:
            self.path.unlink()

    def add(self, record_id: str | None, request: dict[str, object], reason: str) -> None:
        """Append one failed request and make it durable."""
        line = json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "stage": self.stage,
                "record_id": record_id,
                "reason": reason,
                "request": request,
            },
            ensure_ascii=False,
        )
        with self._lock:
            trim_torn_tail(self.path)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())


def read_records(path: Path, *, kept_only: bool = False) -> Iterator[Record]:
    """The records of a JSONL file, streaming; a torn last line (a kill mid-write) is dropped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return  # a torn tail: the batch was not fully written, so it never counted
            record = Record.model_validate_json(line)
            if record.kept or not kept_only:
                yield record


def _complete_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [line for line in handle if line.endswith("\n")]


def trim_torn_tail(path: Path) -> None:
    """Cut a partial last line, so appending after a kill does not glue two records together."""
    if not path.exists():
        return
    with path.open("rb+") as handle:
        data_end = handle.seek(0, os.SEEK_END)
        if data_end == 0:
            return
        handle.seek(data_end - 1)
        if handle.read(1) == b"\n":
            return
        # Walk back to the last newline; what follows it is the torn record.
        position = data_end - 1
        chunk = 4096
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            block = handle.read(position - start)
            cut = block.rfind(b"\n")
            if cut != -1:
                handle.truncate(start + cut + 1)
                return
            position = start
        handle.truncate(0)


def source_batches(
    records: Iterable[Record], size: int = WRITE_BATCH, interval_s: float = WRITE_INTERVAL_S
) -> Iterator[list[Record]]:
    """Batches of `size` records (or `interval_s` seconds) that never split one input's outputs."""
    batch: list[Record] = []
    started = time.monotonic()
    try:
        for record in records:
            full = len(batch) >= size or time.monotonic() - started >= interval_s
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
