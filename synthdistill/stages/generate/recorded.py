"""Recorded completions: what a teacher already wrote, taken as generate's samples without calling one.

`generate: {recorded: {...}}` reads them from a field of the records (a data column holding one
completion or a list of them, such as the PaLM-540B rationales published with Distilling step-by-step)
or from a file joined to the data: an OpenAI batch job's output (by `custom_id`), an earlier
`synthdistill export` (by question), or any table with a column of completions. Each becomes a `Sample`
parsed exactly as a teacher's completion would be, and every record's provenance names teacher
"recorded", the model that wrote them, and the file and column they came from.

Why an option of generate rather than a `recorded` teacher backend: a backend answers a request (rendered
messages in, completions out) and never sees the record it was made for, so it would have to find the
record again from the prompt text; and it would sit behind the engine, whose cache, call counters,
limits, retries and prices all describe calls, of which there are none here. Recorded completions belong
to a record as its data does, so generate reads them beside the record: no request, no cache entry,
nothing spent, and the same parse modes and Sample fields as sampled completions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthdistill.config import Pipeline
from synthdistill.errors import DataError, StageError
from synthdistill.records import Provenance, Record, Sample
from synthdistill.sources.files import load_file
from synthdistill.teachers.base import Completion
from synthdistill.teachers.engine import Parser, parsed_sample

TEACHER = "recorded"
"""The teacher that provenance names for recorded completions."""
Format = Literal["openai_batch", "export", "table"]
# How each format is joined by default: (the file's column, the record's field).
_JOIN: dict[str, tuple[str, str]] = {
    "openai_batch": ("custom_id", "id"),
    "export": ("question", "question"),
    "table": ("question", "question"),
}
# Where each format keeps its completions, for provenance.
_COLUMN = {"openai_batch": "response.body.choices", "export": "rationale, answer"}
# Columns by which an export (synthdistill/records.py DATASET_COLUMNS) is told from other tables.
_EXPORT_COLUMNS = {"id", "question", "rationale", "answer", "input"}


class RecordedConfig(BaseModel):
    """Completions a teacher already wrote, taken as the samples instead of calling the teacher."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="Who wrote the completions, named as the model in every record's provenance (whose "
        "teacher is 'recorded'), for example 'PaLM-540B (Distilling step-by-step)'."
    )
    field: str | None = Field(
        None,
        description="The records' field holding their completions: one text, or a list of texts for "
        "several samples. With data.fields set, map the column there too (palm_cot: palm_cot); rows "
        "whose value is empty still load and are dropped here with the reason. None reads `file`.",
    )
    file: str | None = Field(
        None,
        description="A file of completions joined to the data (relative to the pipeline file): an "
        "OpenAI batch job's output .jsonl, a `synthdistill export` (data.jsonl or train.parquet), or a "
        ".jsonl/.json/.csv/.parquet table with a `column` of completions. None reads `field`.",
    )
    format: Literal["auto", "openai_batch", "export", "table"] = Field(
        "auto",
        description="How `file` is laid out: openai_batch (custom_id, response.body.choices), export "
        "(question, rationale, answer), table (`column`); auto tells them apart by the first row.",
    )
    column: str | None = Field(
        None, description="The table's column of completions (a text or a list of texts a row)."
    )
    file_key: str | None = Field(
        None,
        description="The file's column naming the record a row answers; None takes custom_id for a "
        "batch output and question otherwise.",
    )
    data_key: str | None = Field(
        None,
        description="The records' field that file_key holds (mapped in data.fields when that is set); "
        "None takes id for a batch output and question otherwise. Questions match ignoring whitespace.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> RecordedConfig:
        if (self.field is None) == (self.file is None):
            raise ValueError(
                "give either field (a column of the data holding completions) or file (a file of "
                "completions joined to the data), not both or neither"
            )
        if self.field is not None:
            given = [name for name in ("column", "file_key", "data_key") if getattr(self, name) is not None]
            if given or self.format != "auto":
                raise ValueError(
                    f"{', '.join(given) or 'format'} applies to a file of completions; with field, remove it"
                )
        if self.column is not None and self.format in ("openai_batch", "export"):
            raise ValueError(f"column applies to format table; a {self.format} file has its own layout")
        return self


class _Written(NamedTuple):
    """One completion as a file or field holds it, before it is parsed."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None
    fields: dict[str, Any] | None = None
    """Fields already parsed by the run that wrote them (an export), taken as they are."""


@dataclass
class Recorded:
    """A generate stage's recorded completions, handed out record by record."""

    config: RecordedConfig
    provenance: Provenance
    by_key: dict[str, list[_Written]] | None = None
    """The file's completions by join key; None when they are in a field of the records."""
    format: str = ""
    """The file's format (openai_batch, export, table); empty for a field."""

    def samples(self, record: Record, parse: Parser | None) -> tuple[list[Sample], str]:
        """The record's completions as parsed samples, or none and the reason it has none."""
        config = self.config
        if self.by_key is None:
            field = str(config.field)
            try:
                written = [_Written(text) for text in completion_texts(record.input.get(field))]
            except ValueError as exc:
                raise StageError(
                    f"recorded field {field!r} {exc}", stage=self.provenance.stage, record_id=record.id
                ) from None
            return [_parsed(w, parse) for w in written], f"no recorded completion: {field} is empty"
        file_key, data_key = join_keys(config, self.format)
        value = record.input.get(data_key)
        if value is None:
            return [], f"no recorded completion: the record has no {data_key} to join {config.file} on"
        found = self.by_key.get(join_key(value), [])
        reason = f"no recorded completion: no row of {config.file} has {file_key} = {value!r}"
        return [_parsed(w, parse) for w in found], reason


def open_recorded(config: RecordedConfig, pipeline: Pipeline, stage: str) -> Recorded:
    """The recorded completions a generate stage reads, its file read and indexed by join key."""
    data = pipeline.config.data
    if config.field is not None:
        mapped = data.fields.get(config.field)
        column = mapped if isinstance(mapped, str) and "{" not in mapped else config.field
        params: dict[str, Any] = {"file": data.source, "column": column}
        if column != config.field:
            params["field"] = config.field
        return Recorded(config, _provenance(config, stage, params))
    format, rows = read_recorded(config, pipeline.base_dir)
    file_key, data_key = join_keys(config, format)
    by_key: dict[str, list[_Written]] = {}
    for key, written in rows:
        by_key.setdefault(key, []).extend(written)
    params = {
        "file": config.file,
        "format": format,
        "column": config.column or _COLUMN[format],
        "join": f"{file_key} = {data_key}",
    }
    return Recorded(config, _provenance(config, stage, params), by_key, format)


def read_recorded(config: RecordedConfig, base_dir: Path) -> tuple[Format, list[tuple[str, list[_Written]]]]:
    """A recorded file's format and its rows, each as (join key, completions); DataError when unreadable."""
    file = str(config.file)
    rows = list(load_file(file, {}, 0, None, base_dir))
    if not rows:
        raise DataError(f"{file} has no rows; check that it is the file of completions you meant")
    format = _detect(rows[0], config) if config.format == "auto" else config.format
    file_key, _ = join_keys(config, format)
    read = []
    for number, row in enumerate(rows, 1):
        if file_key not in row or row[file_key] is None:
            raise DataError(
                f"row {number} of {file} has no {file_key!r} to join on (columns: {', '.join(row)}); set "
                "recorded.file_key to the column naming each row's record"
            )
        read.append((join_key(row[file_key]), _ROWS[format](row, config, f"row {number} of {file}")))
    return format, read


def join_keys(config: RecordedConfig, format: str) -> tuple[str, str]:
    """The (file column, record field) a file of this format is joined on."""
    file_key, data_key = _JOIN[format]
    return config.file_key or file_key, config.data_key or data_key


def join_key(value: Any) -> str:
    """A join value as compared: text with its whitespace collapsed (as questions are de-duplicated)."""
    return " ".join(str(value).split())


def completion_texts(value: Any) -> list[str]:
    """The non-empty texts of a recorded value (None, a text or a list of texts); ValueError otherwise."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in items:
        if item is None:
            continue
        if not isinstance(item, str):
            raise ValueError(
                f"holds a {type(item).__name__}; it must hold a completion's text or a list of texts"
            )
        if item.strip():
            texts.append(item)
    return texts


def _detect(row: dict[str, Any], config: RecordedConfig) -> Format:
    if config.column is not None:
        return "table"
    if "custom_id" in row and ("response" in row or "error" in row):
        return "openai_batch"
    if set(row) >= _EXPORT_COLUMNS:
        return "export"
    raise DataError(
        f"cannot tell how {config.file} is laid out (columns: {', '.join(row)}); it is neither an OpenAI "
        "batch output (custom_id, response) nor a synthdistill export (question, rationale, answer): set "
        "format: table and column: <the column of completions>"
    )


def _batch_row(row: dict[str, Any], config: RecordedConfig, where: str) -> list[_Written]:
    """A batch output line's completions, or one failed completion saying why the request failed."""
    from synthdistill.teachers.base import TransientError
    from synthdistill.teachers.http import response_from_body

    response = row.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    if row.get("error") or status != 200:
        error = (body.get("error") if isinstance(body, dict) else None) or row.get("error") or {}
        message = (error.get("message") if isinstance(error, dict) else str(error)) or "no message"
        how = f"HTTP {status}" if status is not None else "no response"
        return [_Written("", error=f"the batch request failed ({how}): {message}")]
    try:
        reply = response_from_body(body, where)
    except TransientError as exc:
        return [_Written("", error=str(exc))]
    return [
        _Written(c.text, reply.prompt_tokens, c.completion_tokens, c.finish_reason) for c in reply.completions
    ]


def _export_row(row: dict[str, Any], config: RecordedConfig, where: str) -> list[_Written]:
    """An exported record: its rationale and answer as the run that made them parsed (and reviewed) them."""
    rationale, answer = row.get("rationale") or "", row.get("answer")
    if answer is None or not str(answer).strip():
        return [_Written(rationale, error=f"{where} has no answer")]
    return [_Written(rationale, fields={"rationale": rationale, "answer": str(answer)})]


def _table_row(row: dict[str, Any], config: RecordedConfig, where: str) -> list[_Written]:
    column = str(config.column)
    if column not in row:
        raise DataError(f"{where} has no column {column!r} (columns: {', '.join(row)}); fix recorded.column")
    try:
        return [_Written(text) for text in completion_texts(row[column])]
    except ValueError as exc:
        raise DataError(f"{where}: {column!r} {exc}") from None


_ROWS = {"openai_batch": _batch_row, "export": _export_row, "table": _table_row}


def _parsed(written: _Written, parse: Parser | None) -> Sample:
    """A completion as a sample, parsed as the engine parses a teacher's (an export's fields as given)."""
    completion = Completion(
        text=written.text, completion_tokens=written.completion_tokens, finish_reason=written.finish_reason
    )
    sample = parsed_sample(
        completion, written.prompt_tokens, None if written.fields is not None else parse, error=written.error
    )
    if written.fields is not None and written.error is None and parse is not None:
        sample = sample.model_copy(update={"fields": dict(written.fields)})
    return sample


def _provenance(config: RecordedConfig, stage: str, params: dict[str, Any]) -> Provenance:
    return Provenance(stage=stage, teacher=TEACHER, model=config.model, params=params)
