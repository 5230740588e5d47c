"""The review page's queries: the filters, sort order and page it asks for, the group of one question's
samples it asks for, and the SQL they become."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class GroupQuery(BaseModel):
    """What the side-by-side view asks for: every record that answers the same question as one record."""

    model_config = ConfigDict(extra="forbid")

    record: str = Field(
        min_length=1, description="The id of a record; its question's records make the group."
    )
    stage: str = Field(
        "", description="Stage folder holding the record; empty for the last stage in the pipeline that does."
    )
    offset: int = Field(0, ge=0, description="Records of the group to skip.")
    limit: int = Field(50, ge=1, le=PAGE_MAX, description="Records in the page.")


FILTER_FIELDS = {"stage", "kept", "critic", "verdict", "min_agreement", "max_agreement", "q", "decision"}


def conditions(db: sqlite3.Connection, f: Filters) -> tuple[list[str], list[Any]]:
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
    files = {row[0]: row for row in db.execute("SELECT stage, first_rowid, last_rowid, fts FROM files")}
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


def ordering(f: Filters) -> tuple[str, str, list[Any]]:
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


def _fts_query(text: str) -> str:
    """The user's words as an FTS5 query: every word must occur (as a prefix); operators are quoted away."""
    words = [w.replace('"', '""') for w in text.split() if w.strip('"')]
    return " ".join(f'"{w}"*' for w in words)
