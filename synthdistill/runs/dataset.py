"""The kept records of a stage file, with the review applied, as a Hugging Face dataset.

One writer serves the run's `dataset/` (written at the end of every run) and `synthdistill export`. Rows
stream from the stage file into Arrow, so memory stays flat however many records there are.

A stage file of preference pairs (the pairs stage) adds the columns DPO trainers read: `prompt` (the
question), `chosen` and `rejected`. A pair is a record whose input holds the rejected completion
(`REJECTED`); its chosen completion is the record's own rationale and answer, so that a review edit of
the answer or rationale edits the chosen side, and the dpo stage reads pairs the same way.
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
from synthdistill.student.prompts import response_text

REVIEW_COLUMN = "review"
"""The column an export adds: what the review did to the record (accepted, rejected, edited, or null)."""
REJECTED = "rejected"
"""The input field of a preference pair that holds its rejected completion."""
PAIR_COLUMNS = {"prompt": "string", "chosen": "string", "rejected": "string"}
"""The columns a stage file of preference pairs adds, as DPO trainers name them."""


def pair_texts(record: Record) -> tuple[str, str] | None:
    """(chosen, rejected) of a preference pair as the student learns them; None for any other record, and
    for a pair whose two sides are the same text (whitespace aside), as a review edit may leave one."""
    rejected = record.input.get(REJECTED)
    if not isinstance(rejected, str):
        return None
    chosen = response_text(record)
    return None if " ".join(chosen.split()) == " ".join(rejected.split()) else (chosen, rejected)


def is_pair(record: Record) -> bool:
    """Whether the record is a preference pair (its input holds a rejected completion)."""
    return isinstance(record.input.get(REJECTED), str)


def holds_pairs(stage_file: Path, decisions: dict[str, Decision]) -> bool:
    """Whether the kept records of a stage file are preference pairs (judged by the first one)."""
    first = next(reviewed_records(stage_file, decisions), None)
    return first is not None and is_pair(first)


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

    pairs = holds_pairs(stage_file, decisions)
    columns = dataset_columns(review=review, pairs=pairs)
    features = Features({name: Value(kind) for name, kind in columns.items()})
    with tempfile.TemporaryDirectory(prefix="synthdistill-dataset-") as cache_dir:
        if next(reviewed_records(stage_file, decisions), None) is None:
            # A generator that yields nothing is an error to datasets; an empty run is not.
            yield Dataset.from_dict({name: [] for name in columns}, features=features)
            return
        yield Dataset.from_generator(
            dataset_rows,
            gen_kwargs={"stage_file": stage_file, "decisions": decisions, "review": review, "pairs": pairs},
            features=features,
            cache_dir=cache_dir,
        )


def dataset_columns(*, review: bool = False, pairs: bool = False) -> dict[str, str]:
    """The columns of a row and their Arrow types."""
    columns = dict(DATASET_COLUMNS)
    if pairs:
        columns.update(PAIR_COLUMNS)
    if review:
        columns[REVIEW_COLUMN] = "string"
    return columns


def dataset_rows(
    stage_file: Path, decisions: dict[str, Decision], review: bool = False, pairs: bool | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of the kept records, in file order; `pairs` (found from the file when None) adds the pair
    columns. A record that is not a pair in a file of pairs (a dropped one a review accepted) is left out."""
    if pairs is None:
        pairs = holds_pairs(stage_file, decisions)
    for record in reviewed_records(stage_file, decisions):
        row = review_row(record, decisions.get(record.id)) if review else dataset_row(record)
        if pairs:
            texts = pair_texts(record)
            if texts is None:
                continue
            row.update(prompt=str(record.input.get("question", "")), chosen=texts[0], rejected=texts[1])
        yield row


def review_row(record: Record, decision: Decision | None) -> dict[str, Any]:
    """A record's row with what the review did to it."""
    status = None
    if decision is not None:
        status = "edited" if decision.edited else decision.status
    return {**dataset_row(record), REVIEW_COLUMN: status}
