"""File data sources: local JSONL, JSON, CSV and parquet files, and `datasets` datasets already on disk.

`hf:<folder>` reads a dataset saved with `save_to_disk`; `hf:<name>` reads a dataset from the local
`datasets` cache, offline: synthdistill never downloads data behind the user's back.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from synthdistill.errors import DataError

logger = logging.getLogger(__name__)

SUPPORTED = (".jsonl", ".json", ".csv", ".parquet")


def load_file(
    spec: str, options: dict[str, Any], seed: int, count: int | None, base_dir: Path
) -> Iterator[dict[str, Any]]:
    """The rows of a local file or a `datasets` dataset, in file order; at most `count` when given.

    Relative paths resolve against `base_dir` (the pipeline file's folder). Options: `key` (the key of
    a JSON object holding the rows), `split` and `config` (of a `datasets` dataset). `seed` is unused:
    files are read in order and the caller shuffles.
    """
    if spec.startswith("hf:"):
        rows = _dataset_rows(spec.removeprefix("hf:"), options, base_dir)
    else:
        path = _resolve(spec, base_dir)
        if path.is_dir():
            raise DataError(
                f"{path} is a folder, not a file; for a dataset saved with save_to_disk write hf:{spec}"
            )
        reader = _READERS.get(path.suffix.lower())
        if reader is None:
            raise DataError(
                f"cannot read {spec!r}: unsupported file type {path.suffix or '(none)'!r}; supported: "
                f"{', '.join(SUPPORTED)}, or hf:<folder-or-name> for a datasets dataset"
            )
        if not path.is_file():
            raise DataError(
                f"data file not found: {path}; check the path (a relative path is read from the pipeline "
                f"file's folder, {base_dir})"
            )
        rows = _guarded(reader, path, options)
    return itertools.islice(rows, count)


def _resolve(spec: str, base_dir: Path) -> Path:
    path = Path(spec).expanduser()
    return path if path.is_absolute() else base_dir / path


def _guarded(
    reader: Callable[[Path, dict[str, Any]], Iterator[dict[str, Any]]], path: Path, options: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    # Readers are lazy, so read errors surface while rows are consumed; they become one-line DataErrors.
    try:
        yield from reader(path, options)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}); check its permissions") from None


def _read_jsonl(path: Path, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    # A kill mid-write leaves a torn last line; it is dropped, but a bad line with more after it is an error.
    torn: tuple[int, str] | None = None
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if torn is not None:
                raise DataError(
                    f"{path}: line {torn[0]} is not valid JSON ({torn[1]}); fix or remove that line"
                )
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                torn = (number, exc.msg)
                continue
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}: line {number} is a JSON {type(row).__name__}, not an object; "
                    'each line must be one object such as {"question": ..., "answer": ...}'
                )
            yield row
    if torn is not None:
        logger.warning("%s: ignoring the torn last line %d (%s)", path, torn[0], torn[1])


def _read_json(path: Path, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); fix the file"
            ) from None
    key = options.get("key")
    if isinstance(data, dict):
        lists = ", ".join(name for name, value in data.items() if isinstance(value, list)) or "none"
        if key is None:
            raise DataError(
                f"{path} holds a JSON object, not an array; set data.options.key to the key holding the rows "
                f"(keys holding lists: {lists})"
            )
        if not isinstance(data.get(key), list):
            raise DataError(
                f"{path}: key {key!r} does not hold a list of rows; set data.options.key to one of: {lists}"
            )
        data = data[key]
    if not isinstance(data, list):
        raise DataError(f"{path} holds a JSON {type(data).__name__}; it must be an array of objects")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}: item {index} is a JSON {type(row).__name__}, not an object")
        yield row


def _read_csv(path: Path, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    # utf-8-sig drops the byte-order mark that spreadsheet programs put before the header.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if None in row:
                raise DataError(
                    f"{path}: line {reader.line_num} has more values than the header has columns; "
                    "quote values that contain commas"
                )
            yield row


def _read_parquet(path: Path, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    import pyarrow
    import pyarrow.parquet

    try:
        parquet = pyarrow.parquet.ParquetFile(path)
    except pyarrow.ArrowInvalid as exc:
        raise DataError(f"{path} is not a readable parquet file ({exc}); check the file") from None
    # Batches keep a large file from being held in memory whole.
    for batch in parquet.iter_batches():
        yield from batch.to_pylist()


def _dataset_rows(name: str, options: dict[str, Any], base_dir: Path) -> Iterator[dict[str, Any]]:
    import datasets

    folder = _resolve(name, base_dir)
    split = options.get("split")
    if folder.is_dir():
        try:
            loaded = datasets.load_from_disk(str(folder))
        except FileNotFoundError:
            raise DataError(
                f"{folder} is not a dataset saved with save_to_disk; save it with Dataset.save_to_disk, "
                "or point data.source at a data file"
            ) from None
    else:
        try:
            with _offline():
                loaded = datasets.load_dataset(name, options.get("config"), split=split)
        except (FileNotFoundError, ConnectionError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"dataset {name!r} is neither a folder (looked for {folder}) nor in the local datasets cache "
                f"({reason}); synthdistill reads offline only: load it once with datasets.load_dataset "
                "while online, or save it with save_to_disk and write hf:<that folder>"
            ) from None
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(loaded, split, name)
    for row in loaded:
        yield dict(row)


def _pick_split(splits: Any, split: str | None, name: str) -> Any:
    names = ", ".join(splits)
    if split is not None:
        if split not in splits:
            raise DataError(
                f"dataset {name!r} has no split {split!r}; set data.options.split to one of: {names}"
            )
        return splits[split]
    if len(splits) == 1:
        return next(iter(splits.values()))
    if "train" in splits:
        return splits["train"]
    raise DataError(f"dataset {name!r} has several splits ({names}); choose one with data.options.split")


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    # datasets and huggingface_hub read HF_HUB_OFFLINE once at import; their flags are switched for the
    # call instead, so a cached dataset loads and a missing one fails at once rather than downloading.
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


_READERS: dict[str, Callable[[Path, dict[str, Any]], Iterator[dict[str, Any]]]] = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
