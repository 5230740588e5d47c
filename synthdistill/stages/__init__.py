"""Stages: one module each, each exporting `STAGE`, registered through entry points."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from synthdistill.context import StageContext
    from synthdistill.records import Record

T = TypeVar("T")


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


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items in order (the last one shorter): how stages batch their requests."""
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group
