"""The review index's SQLite tables: their schema, and the rows a stage file is indexed as.

One small row per record (the columns the page filters and sorts on, its question's key, and where the
record's line lies in its file), each critic's verdict as a row of its own, and a contentless FTS5 table
per stage file; the record itself stays in the stage file.

A record's question key groups the samples of one question: records share it when they share
`input.question`, or, in a task without that field, the same `parent_id` (the children of one record),
or else the same input.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from hashlib import blake2b
from pathlib import Path
from typing import Any

from synthdistill.runs.view import StageFile

SCHEMA_VERSION = "3"  # 3: records.question_key


def schema_current(db: sqlite3.Connection) -> bool:
    """Whether `db` holds the tables of this schema version (not an older one, nor a damaged file)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError:
        return False
    return row is not None and row[0] == SCHEMA_VERSION


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables and indexes in an empty database."""
    db.executescript(
        f"""
        PRAGMA journal_mode = WAL;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO meta VALUES ('schema', '{SCHEMA_VERSION}');
        CREATE TABLE files (
            stage TEXT PRIMARY KEY, position INTEGER, size INTEGER, mtime_ns INTEGER,
            records INTEGER, kept INTEGER, first_rowid INTEGER, last_rowid INTEGER, fts TEXT
        );
        CREATE TABLE records (
            rowid INTEGER PRIMARY KEY, stage TEXT, line INTEGER, byte_offset INTEGER,
            byte_length INTEGER, id TEXT, kept INTEGER, agreement REAL, rationale_words INTEGER,
            question_key INTEGER
        );
        CREATE INDEX records_stage ON records (stage, kept);
        CREATE INDEX records_id ON records (id, stage);
        CREATE INDEX records_agreement ON records (stage, agreement);
        CREATE INDEX records_words ON records (stage, rationale_words);
        CREATE INDEX records_question ON records (question_key);
        CREATE TABLE verdicts (rec INTEGER, stage TEXT, critic TEXT, passed INTEGER, score REAL);
        CREATE INDEX verdicts_critic ON verdicts (critic, passed, rec);
        CREATE INDEX verdicts_stage ON verdicts (stage, critic, passed);
        CREATE INDEX verdicts_rec ON verdicts (rec, critic, score);
        CREATE TABLE decisions (record_id TEXT PRIMARY KEY, status TEXT, edited INTEGER);
        """
    )
    db.commit()


def forget(db: sqlite3.Connection, folder: str) -> None:
    """Remove every row of the stage `folder`, and its full-text table."""
    row = db.execute("SELECT fts FROM files WHERE stage = ?", (folder,)).fetchone()
    if row is not None:
        db.execute(f"DROP TABLE IF EXISTS {row[0]}")
    db.execute("DELETE FROM verdicts WHERE stage = ?", (folder,))
    db.execute("DELETE FROM records WHERE stage = ?", (folder,))
    db.execute("DELETE FROM files WHERE stage = ?", (folder,))


def index_stage(db: sqlite3.Connection, stage: StageFile, position: int, size: int, mtime_ns: int) -> int:
    """Index one stage file (at `position` in the pipeline, with this size and mtime); the records indexed."""
    first = (db.execute("SELECT coalesce(max(rowid), 0) FROM records").fetchone()[0]) + 1
    # Contentless: the text lives in the stage file, and a changed stage drops its whole table.
    fts = f"fts_{first}"
    db.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5 (input_text, answer, rationale, content='')")
    rowid = first
    kept = 0
    records: list[tuple[Any, ...]] = []
    verdicts: list[tuple[Any, ...]] = []
    texts: list[tuple[Any, ...]] = []
    for line, offset, length, record in _lines(stage.path):
        row, text = _record_row(rowid, stage.folder, line, offset, length, record)
        records.append(row)
        texts.append(text)
        kept += row[6]
        for critic, verdict in (record.get("verdicts") or {}).items():
            if isinstance(verdict, dict):
                passed = int(bool(verdict.get("passed")))
                verdicts.append((rowid, stage.folder, critic, passed, _number(verdict.get("score"))))
        rowid += 1
        if len(records) >= 5000:
            _insert(db, fts, records, verdicts, texts)
            records, verdicts, texts = [], [], []
    _insert(db, fts, records, verdicts, texts)
    db.execute(
        "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (stage.folder, position, size, mtime_ns, rowid - first, kept, first, rowid - 1, fts),
    )
    return rowid - first


def _insert(
    db: sqlite3.Connection,
    fts: str,
    records: list[tuple[Any, ...]],
    verdicts: list[tuple[Any, ...]],
    texts: list[tuple[Any, ...]],
) -> None:
    db.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?)", records)
    db.executemany("INSERT INTO verdicts VALUES (?,?,?,?,?)", verdicts)
    db.executemany(f"INSERT INTO {fts} (rowid, input_text, answer, rationale) VALUES (?,?,?,?)", texts)


def _lines(path: Path) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """(line number, byte offset, byte length, parsed record) of each complete line of a stage file."""
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.endswith(b"\n"):
                return  # a torn tail: the stage is still writing, or was killed mid-batch
            if raw.strip():
                yield number, offset, len(raw), json.loads(raw)
            offset += len(raw)


def _record_row(
    rowid: int, stage: str, line: int, offset: int, length: int, record: dict[str, Any]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The records row and the full-text row of one record."""
    fields = record.get("input") or {}
    input_text = " ".join(str(v) for v in fields.values()) if isinstance(fields, dict) else str(fields)
    rationale = record.get("rationale")
    answer = record.get("answer")
    row = (
        rowid,
        stage,
        line,
        offset,
        length,
        record.get("id"),
        int(bool(record.get("kept", True))),
        _number(record.get("agreement")),
        len(rationale.split()) if isinstance(rationale, str) else None,
        _question_key(record),
    )
    text = (
        rowid,
        input_text,
        None if answer is None else str(answer),
        None if rationale is None else str(rationale),
    )
    return row, text


def _question_key(record: dict[str, Any]) -> int:
    """The key of the question a record (a JSON object) answers, a signed 64-bit hash (see the module's
    docstring); a plain string question, the common case, is hashed without a JSON round."""
    fields = record.get("input")
    question = fields.get("question") if isinstance(fields, dict) else None
    if isinstance(question, str):
        text = "question\0" + question
    elif question is not None:
        text = json.dumps(["question", question], sort_keys=True, default=str)
    elif record.get("parent_id"):
        text = "parent\0" + str(record["parent_id"])
    else:
        text = json.dumps(["input", fields], sort_keys=True, default=str)
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
