"""The review page's query layer: a SQLite index over a run's stage files, paged on the server.

The index (`outputs/<run>/.review-index.sqlite`) holds one small row per record of every stage file:
the columns the page filters and sorts on (stage, kept, agreement, rationale length), the key of the
question it answers (the side-by-side view's group), and where the record's line lies in its file; each
critic's verdict as a row of its own (so filtering works for any critic, built-in or plugin); and a
contentless FTS5 table per stage file for full-text search. The record itself is read from the stage
file by offset when a page shows it, so the index stays small and never disagrees with the data.

It is built once and kept: each stage file's size and mtime are stored, and a stage file that changed
(a re-run) is indexed again on the next open; the others are left as they are. Records are read as
plain JSON, not validated, so fields that other stages add are shown as they are.

This module holds the index as the server uses it (open, refresh, decisions, pages, groups, stats);
tables.py its schema and how a stage file becomes rows; query.py the page's queries and their SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthdistill.review.query import FILTER_FIELDS, Filters, GroupQuery, conditions, ordering
from synthdistill.review.tables import create_schema, forget, index_stage, schema_current
from synthdistill.runs.decisions import Decision
from synthdistill.runs.view import RunView

INDEX_FILE = ".review-index.sqlite"


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
        if not schema_current(index._db):
            index._db.close()
            path.unlink(missing_ok=True)
            index = cls(run, path)
            create_schema(index._db)
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
                forget(self._db, folder)
            for position, stage in enumerate(self.run.stages):
                stat = stage.path.stat()
                row = known.get(stage.folder)
                if row is not None and (row["size"], row["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
                    continue
                forget(self._db, stage.folder)
                count += index_stage(self._db, stage, position, stat.st_size, stat.st_mtime_ns)
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
            joins, params = conditions(self._db, filters)
            order, order_join, order_params = ordering(filters)
            condition = " ".join(joins)
            # Paging through one filter counts its matches once, not once a page.
            key = filters.model_dump_json(include=FILTER_FIELDS)
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

    def group(self, query: GroupQuery) -> dict[str, Any] | None:
        """One page, in file order, of the records of a stage that answer the question `query.record` does.

        With its total, how many are kept, and the record's own place in the group; None when no stage
        (or not the one asked for) holds the record.
        """
        with self._lock:
            anchor = self._db.execute(
                "SELECT r.rowid, r.stage, r.question_key FROM records r JOIN files f ON f.stage = r.stage "
                "WHERE r.id = ? AND (? = '' OR r.stage = ?) ORDER BY f.position DESC LIMIT 1",
                (query.record, query.stage, query.stage),
            ).fetchone()
            if anchor is None:
                return None
            where = "FROM records WHERE stage = ? AND question_key = ?"
            key = (anchor["stage"], anchor["question_key"])
            total, kept, position = self._db.execute(
                f"SELECT count(*), coalesce(sum(kept), 0), coalesce(sum(rowid < ?), 0) {where}",
                (anchor["rowid"], *key),
            ).fetchone()
            rows = self._db.execute(
                f"SELECT stage, line, byte_offset, byte_length {where} ORDER BY rowid LIMIT ? OFFSET ?",
                (*key, query.limit, query.offset),
            ).fetchall()
        return {
            "stage": anchor["stage"],
            "record": query.record,
            "position": position,
            "total": total,
            "kept": kept,
            "offset": query.offset,
            "limit": query.limit,
            "records": list(self._load(rows)),
        }

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
