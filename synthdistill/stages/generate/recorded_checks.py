"""Preflight checks of recorded completions (recorded.py), made before a run spends or writes anything.

A field of the records must exist and hold text or lists of texts, and some training item must have one;
a file must be readable, every one of its rows must match an item of the data (a row that matches nothing
is named, with a count and an example), and some row must answer a training item.
"""

from __future__ import annotations

from synthdistill.config import Pipeline
from synthdistill.errors import ConfigError, DataError
from synthdistill.records import Record
from synthdistill.stages.generate.recorded import (
    RecordedConfig,
    completion_texts,
    join_key,
    join_keys,
    read_recorded,
)


def recorded_configs(pipeline: Pipeline) -> list[tuple[str, RecordedConfig, str]]:
    """(key path, recorded config, parse mode) of each generate stage of `pipeline` that has one."""
    found = []
    for spec in pipeline.stages:
        config = getattr(spec.config, "recorded", None)
        if isinstance(config, RecordedConfig):
            key = f"stages[{spec.index - 1}].{spec.name}.recorded"
            found.append((key, config, str(getattr(spec.config, "parse", "rationale"))))
    return found


def optional_fields(pipeline: Pipeline) -> set[str]:
    """The fields recorded completions are read from, which a row of the data may leave empty.

    Each is checked against data.fields here, before the data is read, so that a misspelt field is named
    as such (a ConfigError) rather than as a column that some rows lack.
    """
    file, fields = str(pipeline.path), pipeline.config.data.fields
    found = set()
    for key, config, _ in recorded_configs(pipeline):
        if config.field is None:
            continue
        if fields and config.field not in fields:
            raise ConfigError(
                f"{config.field!r} is not a field of the records (data.fields maps {', '.join(fields)}); "
                f"map the column of recorded completions there too, for example {config.field}: "
                f"{config.field}",
                file=file,
                key=f"{key}.field",
            )
        found.add(config.field)
    return found


def check_recorded(pipeline: Pipeline, train: list[Record], test: list[Record]) -> None:
    """Each recorded source exists, has the right shape and joins the data; a one-line ConfigError if not."""
    for key, config, parse in recorded_configs(pipeline):
        if config.field is not None:
            _check_field(config, pipeline, train, test, key)
        else:
            _check_file(config, pipeline, train, key, parse)


def _check_field(
    config: RecordedConfig, pipeline: Pipeline, train: list[Record], test: list[Record], key: str
) -> None:
    file, field = str(pipeline.path), str(config.field)
    records = [*train, *test]
    if not any(field in record.input for record in records):
        columns = ", ".join(sorted({name for record in records[:50] for name in record.input}))
        raise ConfigError(
            f"no record of {pipeline.config.data.source} has a column {field!r} (columns: {columns}); "
            "name the column that holds the completions",
            file=file,
            key=f"{key}.field",
        )
    written = 0
    for record in train:
        try:
            written += bool(completion_texts(record.input.get(field)))
        except ValueError as exc:
            question = str(record.input.get("question", record.id))[:60]
            raise ConfigError(
                f"{field!r} of the item {question!r} {exc}", file=file, key=f"{key}.field"
            ) from None
    if not written:
        raise ConfigError(
            f"none of the {len(train)} training items has a recorded completion in {field!r}; check the "
            "column, or use data rows that hold completions",
            file=file,
            key=f"{key}.field",
        )


def _check_file(
    config: RecordedConfig, pipeline: Pipeline, train: list[Record], key: str, parse: str
) -> None:
    from synthdistill.data import load_items

    file, data = str(pipeline.path), pipeline.config.data
    try:
        format, rows = read_recorded(config, pipeline.base_dir)
    except DataError as exc:
        raise ConfigError(str(exc), file=file, key=f"{key}.file") from None
    file_key, data_key = join_keys(config, format)
    if format == "export" and parse not in ("rationale", "text"):
        raise ConfigError(
            f"{config.file} is an export, which holds rationales and answers; it cannot give parse: "
            f"{parse} (use rationale or text)",
            file=file,
            key=key,
        )
    if data.fields and data_key not in data.fields:
        raise ConfigError(
            f"the join reads the records' {data_key!r}, which data.fields does not map "
            f"({', '.join(data.fields)}); map it there ({data_key}: <column>) or set data_key",
            file=file,
            key=f"{key}.data_key",
        )
    # Rows are matched against the whole data, not the splits, which --limit and split sizes cut.
    known: set[str] = set()
    for source, name in ((data.source, "data.source"), (data.test_source, "data.test_source")):
        if source is not None:
            count = data.split.train + data.split.test
            for item in load_items(
                source,
                data.fields,
                data.options,
                pipeline.base_dir,
                file=file,
                key=name,
                count=count,
                optional=optional_fields(pipeline),
            ):
                if item.get(data_key) is not None:
                    known.add(join_key(item[data_key]))
    unmatched = [value for value, _ in rows if value not in known]
    if unmatched:
        raise ConfigError(
            f"{len(unmatched)} of {len(rows)} rows of {config.file} match no item of the data by "
            f"{file_key} = {data_key} (for example {file_key} {unmatched[0]!r}); check that the file "
            "answers this data, or set file_key and data_key to the columns that name the same item",
            file=file,
            key=f"{key}.file",
        )
    keys = {value for value, _ in rows}
    if train and not any(join_key(r.input.get(data_key)) in keys for r in train if data_key in r.input):
        raise ConfigError(
            f"no row of {config.file} answers any of the {len(train)} training items (by {file_key} = "
            f"{data_key}); the rows answer other items of the data",
            file=file,
            key=f"{key}.file",
        )
