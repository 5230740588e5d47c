"""The review page's query layer: a SQLite index over a run's stage files, paged on the server.

The index (`outputs/<run>/.review-index.sqlite`) holds one small row per record of every stage file:
the columns the page filters and sorts on (stage, kept, agreement, rationale length) and where the
record's line lies in its file; each critic's verdict as a row of its own (so filtering works for any
critic, built-in or plugin); and a contentless FTS5 table per stage file for full-text search. The
record itself is read from the stage file by offset when a page shows it, so the index stays small
and never disagrees with the data.

It is built once and kept: each stage file's size and mtime are stored, and a stage file that changed
(a re-run) is indexed again on the next open; the others are left as they are. Records are read as
plain JSON, not validated, so fields that other stages add are shown as they are.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.runs.decisions import Decision
from synthdistill.runs.view import RunView, StageFile

INDEX_FILE = ".review-index.sqlite"
SCHEMA_VERSION = "2"
PAGE_MAX = 200


class Filters(BaseModel):
    """What the page asks for: filters, sort order and the page."""

    model_config = ConfigDict(extra="forbid")

    stage: str = Field("", description="Stage folder (03-filter); empty for every stage.")
    kept: bool | None = Field(None, description="Whether only kept (true) or dropped (false) records.")
    critic: str = Field("", description="Only records this critic judged.")
    verdict: Literal["", "pass", "fail"] = Field("", description="With `critic`: only its passes or fails.")
    min_agreement: float | None = Field(None, ge=0, le=1, description="Lowest self-consistency agreement.")
    max_agreement: float | None = Field(None, ge=0, le=1, description="Highest self-consistency agreement.")
    q: str = Field("", description="Full-text search over the input, answer and rationale.")
    decision: Literal["", "accepted", "rejected", "edited", "undecided"] = Field(
        "", description="Only records with this review decision."
    )
    sort: str = Field(
        "line",
        pattern=r"^(line|agreement|length|score:.+)$",
        description="line, agreement, length, or score:<critic>.",
    )
    order: Literal["asc", "desc"] = Field("asc", description="Sort direction.")
    offset: int = Field(0, ge=0, description="Records to skip.")
    limit: int = Field(50, ge=1, le=PAGE_MAX, description="Records in the page.")


_FILTER_FIELDS = {"stage", "kept", "critic", "verdict", "min_agreement", "max_agreement", "q", "decision"}


@dataclass
class BuildReport:
    """What opening the index did."""

    stages_indexed: list[str]
    records_indexed: int
    seconds: float


class ReviewIndex:
    """The index of one run folder; open it with `ReviewIndex.open(run)`."""

    def __init__(self, run: RunView, path: Path) -> None:
        self.run = run
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {}  # filters -> matching records; cleared whenever data changes

    @classmethod
    def open(cls, run: RunView) -> tuple[ReviewIndex, BuildReport]:
        """Open (or build) the run's index and bring every changed stage file up to date."""
        path = run.root / INDEX_FILE
        index = cls(run, path)
        if not index._schema_current():
            index._db.close()
            path.unlink(missing_ok=True)
            index = cls(run, path)
            index._create_schema()
        return index, index.refresh()

    def refresh(self) -> BuildReport:
        """Index again each stage file whose size or mtime changed; drop stages no longer there."""
        started = time.perf_counter()
        indexed: list[str] = []
        count = 0
        with self._lock:
            known = {row["stage"]: row for row in self._db.execute("SELECT * FROM files")}
            wanted = {stage.folder for stage in self.run.stages}
            for folder in set(known) - wanted:
                self._forget(folder)
            for position, stage in enumerate(self.run.stages):
                stat = stage.path.stat()
                row = known.get(stage.folder)
                if row is not None and (row["size"], row["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
                    continue
                self._forget(stage.folder)
                count += self._index_stage(stage, position, stat.st_size, stat.st_mtime_ns)
                indexed.append(stage.folder)
            self._db.commit()
            if indexed:
                self._totals.clear()
        return BuildReport(indexed, count, round(time.perf_counter() - started, 3))

    def set_decisions(self, decisions: dict[str, Decision]) -> None:
        """Replace the decisions the page filters on with these."""
        with self._lock:
            self._db.execute("DELETE FROM decisions")
            self._db.executemany(
                "INSERT INTO decisions VALUES (?, ?, ?)",
                [(d.record_id, d.status, int(d.edited)) for d in decisions.values()],
            )
            self._db.commit()
            self._totals.clear()

    def put_decision(self, decision: Decision) -> None:
        """Record one record's new decision state."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?)",
                (decision.record_id, decision.status, int(decision.edited)),
            )
            self._db.commit()
            self._totals.clear()

    def has_record(self, record_id: str) -> bool:
        """Whether any stage file holds a record with this id."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM records WHERE id = ? LIMIT 1", (record_id,)).fetchone()
        return row is not None

    def query(self, filters: Filters) -> tuple[int, list[dict[str, Any]]]:
        """The number of records that match and one page of them, as stored (JSON objects)."""
        with self._lock:
            joins, params = self._conditions(filters)
            order, order_join, order_params = self._ordering(filters)
            condition = " ".join(joins)
            # Paging through one filter counts its matches once, not once a page.
            key = filters.model_dump_json(include=_FILTER_FIELDS)
            total = self._totals.get(key)
            if total is None:
                sql = f"SELECT count(*) FROM records r {condition}"
                total = self._totals[key] = self._db.execute(sql, params).fetchone()[0]
            rows = self._db.execute(
                f"SELECT r.stage, r.line, r.byte_offset, r.byte_length FROM records r {order_join} "
                f"{condition} ORDER BY {order} LIMIT ? OFFSET ?",
                [*order_params, *params, filters.limit, filters.offset],
            ).fetchall()
        return total, list(self._load(rows))

    def stats(self, stage: str) -> dict[str, Any]:
        """Counts per stage, and for `stage`: pass rates per critic, agreement and length histograms."""
        with self._lock:
            stages = [
                {"stage": row[0], "records": row[1], "kept": row[2]}
                for row in self._db.execute("SELECT stage, records, kept FROM files ORDER BY position")
            ]
            critics = [
                {"critic": row[0], "judged": row[1], "passed": row[2] or 0}
                for row in self._db.execute(
                    "SELECT critic, count(*), sum(passed) FROM verdicts WHERE stage = ? "
                    "GROUP BY critic ORDER BY critic",
                    (stage,),
                )
            ]
            agreement = [0] * 10
            for bucket, n in self._db.execute(
                "SELECT min(CAST(agreement * 10 AS INTEGER), 9), count(*) FROM records "
                "WHERE stage = ? AND agreement IS NOT NULL GROUP BY 1",
                (stage,),
            ):
                agreement[bucket] = n
            longest = self._db.execute(
                "SELECT max(rationale_words) FROM records WHERE stage = ?", (stage,)
            ).fetchone()[0]
            width = max(1, -(-(longest or 0) // 10))
            lengths = [0] * 10
            for bucket, n in self._db.execute(
                "SELECT min(rationale_words / ?, 9), count(*) FROM records "
                "WHERE stage = ? AND rationale_words IS NOT NULL GROUP BY 1",
                (width, stage),
            ):
                lengths[bucket] = n
            decided = dict(
                self._db.execute(
                    "SELECT CASE WHEN d.status = 'rejected' THEN 'rejected' WHEN d.edited THEN 'edited' "
                    "ELSE 'accepted' END, count(*) FROM decisions d WHERE EXISTS "
                    "(SELECT 1 FROM records r WHERE r.id = d.record_id AND r.stage = ?) GROUP BY 1",
                    (stage,),
                ).fetchall()
            )
        return {
            "stage": stage,
            "stages": stages,
            "critics": critics,
            "agreement": {"edges": [i / 10 for i in range(11)], "counts": agreement},
            "rationale_words": {"edges": [i * width for i in range(11)], "counts": lengths},
            "decisions": decided,
        }

    def critics(self) -> list[str]:
        """Names of every critic with a verdict in the run."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT critic FROM verdicts ORDER BY 1")]

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _schema_current(self) -> bool:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError:
            return False
        return row is not None and row[0] == SCHEMA_VERSION

    def _create_schema(self) -> None:
        self._db.executescript(
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
                byte_length INTEGER, id TEXT, kept INTEGER, agreement REAL, rationale_words INTEGER
            );
            CREATE INDEX records_stage ON records (stage, kept);
            CREATE INDEX records_id ON records (id, stage);
            CREATE INDEX records_agreement ON records (stage, agreement);
            CREATE INDEX records_words ON records (stage, rationale_words);
            CREATE TABLE verdicts (rec INTEGER, stage TEXT, critic TEXT, passed INTEGER, score REAL);
            CREATE INDEX verdicts_critic ON verdicts (critic, passed, rec);
            CREATE INDEX verdicts_stage ON verdicts (stage, critic, passed);
            CREATE INDEX verdicts_rec ON verdicts (rec, critic, score);
            CREATE TABLE decisions (record_id TEXT PRIMARY KEY, status TEXT, edited INTEGER);
            """
        )
        self._db.commit()

    def _forget(self, folder: str) -> None:
        row = self._db.execute("SELECT fts FROM files WHERE stage = ?", (folder,)).fetchone()
        if row is not None:
            self._db.execute(f"DROP TABLE IF EXISTS {row[0]}")
        self._db.execute("DELETE FROM verdicts WHERE stage = ?", (folder,))
        self._db.execute("DELETE FROM records WHERE stage = ?", (folder,))
        self._db.execute("DELETE FROM files WHERE stage = ?", (folder,))

    def _index_stage(self, stage: StageFile, position: int, size: int, mtime_ns: int) -> int:
        first = (self._db.execute("SELECT coalesce(max(rowid), 0) FROM records").fetchone()[0]) + 1
        # Contentless: the text lives in the stage file, and a changed stage drops its whole table.
        fts = f"fts_{first}"
        self._db.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5 (input_text, answer, rationale, content='')")
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
                self._insert(fts, records, verdicts, texts)
                records, verdicts, texts = [], [], []
        self._insert(fts, records, verdicts, texts)
        self._db.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (stage.folder, position, size, mtime_ns, rowid - first, kept, first, rowid - 1, fts),
        )
        return rowid - first

    def _insert(
        self,
        fts: str,
        records: list[tuple[Any, ...]],
        verdicts: list[tuple[Any, ...]],
        texts: list[tuple[Any, ...]],
    ) -> None:
        self._db.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)", records)
        self._db.executemany("INSERT INTO verdicts VALUES (?,?,?,?,?)", verdicts)
        self._db.executemany(
            f"INSERT INTO {fts} (rowid, input_text, answer, rationale) VALUES (?,?,?,?)", texts
        )

    def _conditions(self, f: Filters) -> tuple[list[str], list[Any]]:
        """JOIN clauses, then one WHERE clause, with their parameters in the order they appear."""
        joins: list[str] = []
        where: list[str] = []
        params: list[Any] = []
        if f.critic:
            verdict = {"pass": " AND v.passed = 1", "fail": " AND v.passed = 0", "": ""}[f.verdict]
            joins.append(f"JOIN verdicts v ON v.rec = r.rowid AND v.critic = ?{verdict}")
            params.append(f.critic)
        if f.decision:
            joins.append("LEFT JOIN decisions d ON d.record_id = r.id")
            where.append(
                {
                    "accepted": "d.status = 'accepted'",
                    "rejected": "d.status = 'rejected'",
                    "edited": "d.edited = 1",
                    "undecided": "d.record_id IS NULL",
                }[f.decision]
            )
        files = {
            row[0]: row for row in self._db.execute("SELECT stage, first_rowid, last_rowid, fts FROM files")
        }
        if f.stage:
            # A stage's records are one block of rowids: a range walks the table in order, no lookups.
            _, low, high, _ = files.get(f.stage, (f.stage, 0, -1, None))
            where.append("r.rowid BETWEEN ? AND ?")
            params.extend([low, high])
        if f.kept is not None:
            where.append("r.kept = ?")
            params.append(int(f.kept))
        if f.min_agreement is not None:
            where.append("r.agreement >= ?")
            params.append(f.min_agreement)
        if f.max_agreement is not None:
            where.append("r.agreement <= ?")
            params.append(f.max_agreement)
        match = _fts_query(f.q)
        if match:
            tables = [row[3] for name, row in files.items() if not f.stage or name == f.stage]
            found = " UNION ALL ".join(f"SELECT rowid FROM {t} WHERE {t} MATCH ?" for t in tables)
            where.append(f"r.rowid IN ({found or 'SELECT NULL'})")
            params.extend([match] * len(tables))
        if where:
            joins.append("WHERE " + " AND ".join(where))
        return joins, params

    def _ordering(self, f: Filters) -> tuple[str, str, list[Any]]:
        """ORDER BY terms, a JOIN they need (before the filters' joins), and its parameters."""
        direction = "DESC" if f.order == "desc" else "ASC"
        if f.sort == "agreement":
            return f"r.agreement IS NULL, r.agreement {direction}, r.rowid", "", []
        if f.sort == "length":
            return f"r.rationale_words IS NULL, r.rationale_words {direction}, r.rowid", "", []
        if f.sort.startswith("score:"):
            critic = f.sort[len("score:") :]
            if critic == f.critic:  # the filter's join already holds this critic's verdict
                return f"v.score IS NULL, v.score {direction}, r.rowid", "", []
            join = "LEFT JOIN verdicts s ON s.rec = r.rowid AND s.critic = ?"
            return f"s.score IS NULL, s.score {direction}, r.rowid", join, [critic]
        # One stage is one block of rowids; across stages, pipeline order (a re-run stage gets new rowids).
        return (f"r.rowid {direction}" if f.stage else f"r.stage {direction}, r.rowid {direction}"), "", []

    def _load(self, rows: list[sqlite3.Row]) -> Iterator[dict[str, Any]]:
        handles: dict[str, Any] = {}
        try:
            for row in rows:
                handle = handles.get(row["stage"])
                if handle is None:
                    handle = handles[row["stage"]] = self.run.stage(row["stage"]).path.open("rb")
                handle.seek(row["byte_offset"])
                record = json.loads(handle.read(row["byte_length"]))
                yield {"stage": row["stage"], "line": row["line"], "record": record}
        finally:
            for handle in handles.values():
                handle.close()


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
    )
    text = (
        rowid,
        input_text,
        None if answer is None else str(answer),
        None if rationale is None else str(rationale),
    )
    return row, text


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fts_query(text: str) -> str:
    """The user's words as an FTS5 query: every word must occur (as a prefix); operators are quoted away."""
    words = [w.replace('"', '""') for w in text.split() if w.strip('"')]
    return " ".join(f'"{w}"*' for w in words)
