"""Task data: reading a pipeline's source, mapping its columns to task fields, and splitting train from test.

A source (found in the `source` registry: `builtin` for `builtin:<task>`, `file` for everything else)
yields rows; `data.fields` maps each row to the task's fields; rows are de-duplicated by question,
shuffled with the pipeline's seed, and cut into disjoint test and train splits. A row without a value for
a field is skipped, except for the `optional` fields a caller names (a column of recorded completions that
only some rows hold): those are left out of that row's item.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from synthdistill.config import DataConfig
from synthdistill.errors import DataError
from synthdistill.records import Record, stable_hash

logger = logging.getLogger(__name__)

# A getter turns one row into one field's value, or None when the row has none (it is then skipped).
_Getter = Callable[[dict[str, Any], str], Any]


def load_splits(
    config: DataConfig,
    *,
    seed: int,
    base_dir: Path,
    limit: int | None = None,
    file: str = "",
    notes: list[str] | None = None,
    optional: Collection[str] = (),
) -> tuple[list[Record], list[Record]]:
    """The (train, test) records of a pipeline's data, disjoint and the same for the same seed.

    `base_dir` is the pipeline file's folder, against which relative data paths resolve; `limit` keeps
    the first N of each split (the same items a full run starts with); `file` is the pipeline's path,
    named in error messages; `notes` collects what the caller should tell the user (a split the data
    could not fill); `optional` names fields a row may lack (its item is kept without them), though a
    column that no row has is still an error.
    """
    notes = notes if notes is not None else []
    getters = _compile_fields(config.fields, file)
    n_train, n_test = config.split.train, config.split.test
    # Built-in tasks are asked for both splits' worth even beside a test_source, which may overlap them.
    source_items = _items(
        config.source, "data.source", config, getters, seed, n_train + n_test, base_dir, file, optional
    )
    if config.test_source is None:
        n_train, n_test = _fit(len(source_items), n_train, n_test, config.source, notes)
        test, train = source_items[:n_test], source_items[n_test : n_test + n_train]
    else:
        test_items = _items(
            config.test_source, "data.test_source", config, getters, seed, n_test, base_dir, file, optional
        )
        test = test_items[:n_test]
        held_out = {_dedup_key(item) for item in test}
        candidates = [item for item in source_items if _dedup_key(item) not in held_out]
        if len(candidates) < len(source_items):
            logger.info(
                "dropped %d items of %s that are also in the test split",
                len(source_items) - len(candidates),
                config.source,
            )
        train = candidates[:n_train]
        for name, got, asked in (("test", len(test), n_test), ("train", len(train), n_train)):
            if got < asked:
                notes.append(
                    f"the {name} split has {got} items, fewer than the {asked} asked; using them all"
                )
                logger.warning("%s", notes[-1])
    if not train:
        raise _error(
            file,
            "data.source",
            f"{config.source} gave no training items (every item is in the test split); "
            "use a larger source or a smaller data.split.test",
        )
    if limit is not None:
        train, test = train[:limit], test[:limit]
    return [Record.from_input(item) for item in train], [Record.from_input(item) for item in test]


def load_items(
    source: str,
    fields: dict[str, str | dict[str, str]],
    options: dict[str, Any],
    base_dir: Path,
    *,
    file: str,
    key: str,
    count: int = 1000,
    optional: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Every mapped item of one data file (de-duplicated by question, in a seeded order), for evaluation
    sets, training mixes and joining recorded completions; errors are one-line DataErrors naming `file`
    and `key`; `optional` as for `load_splits`."""
    config = DataConfig(source=source, fields=fields, options=options)
    # A file is read whole; a builtin task is asked for `count` items.
    return _items(source, key, config, _compile_fields(fields, file), 0, count, base_dir, file, optional)


def _items(
    spec: str,
    key: str,
    config: DataConfig,
    getters: dict[str, _Getter],
    seed: int,
    count: int,
    base_dir: Path,
    file: str,
    optional: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The mapped items of one source, de-duplicated by question and shuffled with `seed`."""
    from synthdistill.registry import registry

    if spec.startswith("builtin:"):
        loader, argument, asked = registry("source").get("builtin"), spec.removeprefix("builtin:"), count
    else:
        # A file is read whole (None), since the split shuffles all of it.
        loader, argument, asked = registry("source").get("file"), spec, None
    try:
        rows = list(loader(argument, dict(config.options), seed, asked, base_dir))
    except DataError as exc:
        raise _error(file, key, str(exc)) from None
    if not rows:
        raise _error(file, key, f"{spec} has no rows; check that it is the file you meant")
    items = _map_rows(rows, getters, config, spec, file, optional)
    unique: dict[str, dict[str, Any]] = {}
    for item in items:
        unique.setdefault(_dedup_key(item), item)
    if len(unique) < len(items):
        logger.info("dropped %d duplicate questions of %s", len(items) - len(unique), spec)
    shuffled = list(unique.values())
    random.Random(seed).shuffle(shuffled)
    return shuffled


def _fit(total: int, n_train: int, n_test: int, source: str, notes: list[str]) -> tuple[int, int]:
    """Split sizes for `total` items: as asked when there are enough, else in the asked proportion."""
    if total >= n_train + n_test:
        return n_train, n_test
    # Keep at least one training item: a run without any has nothing to distil.
    test = min(math.floor(total * n_test / (n_train + n_test)), total - 1)
    notes.append(
        f"{source} has {total} unique items, fewer than the {n_train + n_test} asked (train {n_train} + "
        f"test {n_test}); using train {total - test}, test {test}: shrink data.split or give more data"
    )
    logger.warning("%s", notes[-1])
    return total - test, test


def _dedup_key(item: dict[str, Any]) -> str:
    question = item.get("question")
    if isinstance(question, str):
        return " ".join(question.split())
    return stable_hash(item)


def _map_rows(
    rows: list[dict[str, Any]],
    getters: dict[str, _Getter],
    config: DataConfig,
    source: str,
    file: str,
    optional: Collection[str],
) -> list[dict[str, Any]]:
    if not getters:
        return [{column: _text(value) for column, value in row.items()} for row in rows]
    items = []
    skipped = dict.fromkeys(getters, 0)
    # The first row lacking an optional field's column: an error only when every row lacks it (a typo).
    absent: dict[str, tuple[int, _MissingColumn]] = {}
    for row in rows:
        item = {}
        for field, get in getters.items():
            try:
                item[field] = _text(get(row, source))
            except _MissingColumn as exc:
                if field not in optional:
                    raise
                count, first = absent.get(field, (0, exc))
                absent[field] = (count + 1, first)
                item[field] = None
        missing = [field for field, value in item.items() if value is None and field not in optional]
        for field in missing:
            skipped[field] += 1
        if not missing:
            items.append({field: value for field, value in item.items() if value is not None})
    for count, first in absent.values():
        if count == len(rows):
            raise first
    if not items:
        field = max(skipped, key=lambda name: skipped[name])
        raise _error(
            file,
            f"data.fields.{field}",
            f"no row of {source} gave a value for {config.fields[field]!r} ({skipped[field]} of {len(rows)} "
            "rows had none); check the regex or the column against the data",
        )
    for field, count in skipped.items():
        if count:
            logger.warning(
                "data.fields.%s: skipped %d of %d rows of %s that gave no value (no match, or empty)",
                field,
                count,
                len(rows),
                source,
            )
    return items


def _compile_fields(fields: dict[str, str | dict[str, str]], file: str) -> dict[str, _Getter]:
    """One getter per task field, checked before any row is read."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    getters: dict[str, _Getter] = {}
    for field, spec in fields.items():
        key = f"data.fields.{field}"
        if isinstance(spec, dict):
            getters[field] = _regex_getter(spec, key, file)
        elif "{{" in spec or "{%" in spec:
            getters[field] = _template_getter(environment, spec, key, file)
        else:
            getters[field] = _column_getter(spec, key, file)
    return getters


def _column_getter(column: str, key: str, file: str) -> _Getter:
    """A column's value; a dotted name reaches into a nested one (CommonsenseQA's `choices.text` is the
    list of choice texts inside its {label, text} column), where a jinja expression could only give text."""

    def get(row: dict[str, Any], source: str) -> Any:
        if column in row:
            return row[column]
        value: Any = row
        for part in column.split("."):
            if not isinstance(value, dict) or part not in value:
                raise _missing_column(file, key, column, row, source)
            value = value[part]
        return value

    return get


def _regex_getter(spec: dict[str, str], key: str, file: str) -> _Getter:
    if set(spec) != {"from", "regex"}:
        raise _error(
            file,
            key,
            f"a regex field is {{from: column, regex: pattern}}, got keys {', '.join(spec) or 'none'}; "
            "give exactly those two",
        )
    try:
        pattern = re.compile(spec["regex"])
    except re.error as exc:
        raise _error(file, key, f"invalid regex {spec['regex']!r} ({exc}); fix the pattern") from None
    column = _column_getter(spec["from"], key, file)
    group = 1 if pattern.groups else 0

    def get(row: dict[str, Any], source: str) -> str | None:
        value = _text(column(row, source))
        if value is None:
            return None
        match = pattern.search(str(value))
        return match.group(group) if match else None

    return get


def _template_getter(environment: jinja2.Environment, expression: str, key: str, file: str) -> _Getter:
    try:
        template = environment.from_string(expression)
        # Globals such as range() look undeclared to jinja but are never columns.
        variables = jinja2.meta.find_undeclared_variables(environment.parse(expression)) - set(
            environment.globals
        )
    except jinja2.TemplateSyntaxError as exc:
        raise _error(file, key, f"invalid jinja expression {expression!r} ({exc.message}); fix it") from None

    def get(row: dict[str, Any], source: str) -> str:
        # Checked by name first, so the message names the column rather than jinja's undefined value.
        for column in sorted(variables):
            if column not in row:
                raise _missing_column(file, key, column, row, source)
        try:
            return template.render(row)
        except jinja2.TemplateError as exc:
            raise _error(
                file, key, f"cannot render {expression!r} for a row of {source} ({exc}); fix it"
            ) from None

    return get


def _text(value: Any) -> Any:
    """A scalar as text (5.0 as "5", as a gold answer is written); lists, dicts and booleans (flags such as
    Self-Instruct's is_classification) stay as they are."""
    if value is None or isinstance(value, str | list | dict | bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


class _MissingColumn(DataError):
    """A row lacks a column that a field reads."""


def _missing_column(file: str, key: str, column: str, row: dict[str, Any], source: str) -> _MissingColumn:
    available = ", ".join(map(str, row)) or "none"
    message = f"column {column!r} not found in {source}; available columns: {available}; fix {key}"
    return _MissingColumn(_located(file, key, message))


def _error(file: str, key: str, message: str) -> DataError:
    return DataError(_located(file, key, message))


def _located(file: str, key: str, message: str) -> str:
    where = ": ".join(part for part in (file, key) if part)
    return f"{where}: {message}" if where else message
