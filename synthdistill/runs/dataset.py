"""The kept records of a stage file, with the review applied, as a Hugging Face dataset.

One writer serves the run's `dataset/` (written at the end of every run) and `synthdistill export`. Rows
stream from the stage file into Arrow, so memory stays flat however many records there are.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthdistill.records import DATASET_COLUMNS, Record, dataset_row
from synthdistill.runs.decisions import Decision, reviewed_records

REVIEW_COLUMN = "review"
"""The column an export adds: what the review did to the record (accepted, rejected, edited, or null)."""


def save_dataset(stage_file: Path, decisions: dict[str, Decision], target: Path) -> None:
    """`target` (save_to_disk) plus `target`/train.parquet, replacing `target` only once complete.

    It is written into a temporary folder that is renamed at the end, so a kill never leaves half a
    dataset.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    with kept_dataset(stage_file, decisions) as dataset:
        # One shard at least: datasets writes none for an empty dataset and then cannot load it back.
        dataset.save_to_disk(str(tmp), num_shards=max(1, len(dataset) // 100_000 + 1))
        dataset.to_parquet(str(tmp / "train.parquet"))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


@contextmanager
def kept_dataset(stage_file: Path, decisions: dict[str, Decision], *, review: bool = False) -> Iterator[Any]:
    """The kept records as a `datasets.Dataset`, valid inside the `with` (its Arrow files are temporary).

    With `review`, rows carry the review column too.
    """
    from datasets import Dataset, Features, Value

    columns = dataset_columns(review=review)
    features = Features({name: Value(kind) for name, kind in columns.items()})
    with tempfile.TemporaryDirectory(prefix="synthdistill-dataset-") as cache_dir:
        if next(reviewed_records(stage_file, decisions), None) is None:
            # A generator that yields nothing is an error to datasets; an empty run is not.
            yield Dataset.from_dict({name: [] for name in columns}, features=features)
            return
        yield Dataset.from_generator(
            dataset_rows,
            gen_kwargs={"stage_file": stage_file, "decisions": decisions, "review": review},
            features=features,
            cache_dir=cache_dir,
        )


def dataset_columns(*, review: bool = False) -> dict[str, str]:
    """The columns of a row and their Arrow types."""
    return {**DATASET_COLUMNS, REVIEW_COLUMN: "string"} if review else dict(DATASET_COLUMNS)


def dataset_rows(
    stage_file: Path, decisions: dict[str, Decision], review: bool = False
) -> Iterator[dict[str, Any]]:
    """The rows of the kept records, in file order."""
    for record in reviewed_records(stage_file, decisions):
        yield review_row(record, decisions.get(record.id)) if review else dataset_row(record)


def review_row(record: Record, decision: Decision | None) -> dict[str, Any]:
    """A record's row with what the review did to it."""
    status = None
    if decision is not None:
        status = "edited" if decision.edited else decision.status
    return {**dataset_row(record), REVIEW_COLUMN: status}
