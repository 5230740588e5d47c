"""Review decisions: what a person decided about records, kept in outputs/<run>/review.jsonl.

Each line is one self-contained decision, appended and fsync'd at once (a kill loses nothing that was
answered):

    {"record_id": "d311d410c6fe9044", "stage": "03-filter", "action": "reject", "reason": "wrong step",
     "answer": null, "rationale": null, "time": "2026-11-23T13:22:33+00:00"}

`action` is "accept", "reject" or "edit" (an edit carries a new `answer`, a new `rationale`, or both).
Several lines may name one record; `load_decisions` folds them in file order, later over earlier:
the latest accept, reject or edit sets the status (an edit accepts: the reviewer has made the record
right), the latest edit of a field sets that field, and every line stays in the decision's `history`.

The review is a human override, and the pipeline honours it when it next runs: every stage that reads
an earlier stage's records reads them through `apply_decisions`, and so does `dataset/`. A rejected
record is dropped (`dropped_by` "review", with the reason as the "review" verdict); an accepted record
is kept even where a critic dropped it (accept re-admits); an edit replaces the answer or rationale
that later stages and training see. Decisions are matched by record id, which a record keeps through
stages that only judge it (filter) and which changes when a stage makes new records from it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthdistill.errors import RunError
from synthdistill.records import Record, Verdict, stable_hash
from synthdistill.runs.folder import read_records, trim_torn_tail

REVIEW_FILE = "review.jsonl"
REVIEW_CRITIC = "review"
"""The name under which a decision shows among a record's verdicts and in `dropped_by`."""


class DecisionEntry(BaseModel):
    """One line of review.jsonl: one decision about one record, complete in itself."""

    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(min_length=1, description="Id of the record decided on.")
    stage: str = Field("", description="Stage folder the record was seen in (03-filter).")
    action: Literal["accept", "reject", "edit"] = Field(description="What was decided.")
    reason: str = Field("", description="Why, in the reviewer's words (optional).")
    answer: str | None = Field(None, description="The new answer, for an edit of the answer.")
    rationale: str | None = Field(None, description="The new rationale, for an edit of the rationale.")
    time: str = Field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"),
        description="When it was decided (UTC, ISO 8601).",
    )


class Decision(BaseModel):
    """Where the decisions about one record stand: the latest of each kind, and all of them."""

    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(description="Id of the record decided on.")
    status: Literal["accepted", "rejected"] | None = Field(
        None, description="Rejected after a reject; accepted after an accept or an edit (the latest wins)."
    )
    reason: str = Field("", description="Reason given with the latest decision that gave one.")
    answer: str | None = Field(None, description="The latest edited answer; None when never edited.")
    rationale: str | None = Field(None, description="The latest edited rationale; None when never edited.")
    stage: str = Field("", description="Stage folder of the latest decision.")
    time: str = Field("", description="Time of the latest decision.")
    history: list[DecisionEntry] = Field(default_factory=list, description="Every decision, oldest first.")

    @property
    def edited(self) -> bool:
        """Whether the answer or the rationale was edited."""
        return self.answer is not None or self.rationale is not None


def review_path(run_dir: Path) -> Path:
    """outputs/<run>/review.jsonl."""
    return Path(run_dir) / REVIEW_FILE


def load_decisions(run_dir: Path) -> dict[str, Decision]:
    """Every record's decision, folded from review.jsonl (later lines over earlier); {} when none."""
    decisions: dict[str, Decision] = {}
    for entry in read_entries(run_dir):
        fold(decisions, entry)
    return decisions


def read_entries(run_dir: Path) -> Iterator[DecisionEntry]:
    """The lines of review.jsonl in order; a torn last line (a kill mid-write) is dropped."""
    path = review_path(run_dir)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith("\n"):
                return
            if not line.strip():
                continue
            try:
                yield DecisionEntry.model_validate_json(line)
            except ValidationError as exc:
                problem = exc.errors()[0]
                field = ".".join(str(part) for part in problem["loc"]) or "line"
                raise RunError(
                    f"{path}:{number}: {field}: {problem['msg']}; fix or delete that line "
                    "(each line is one decision written by `synthdistill review`)"
                ) from None


def fold(decisions: dict[str, Decision], entry: DecisionEntry) -> Decision:
    """Add one decision to the folded state (latest wins, history kept) and return the record's state."""
    current = decisions.get(entry.record_id) or Decision(record_id=entry.record_id)
    update: dict[str, object] = {
        "stage": entry.stage,
        "time": entry.time,
        "history": [*current.history, entry],
    }
    update["status"] = "rejected" if entry.action == "reject" else "accepted"
    if entry.action != "edit" or entry.reason:
        update["reason"] = entry.reason
    if entry.action == "edit":
        if entry.answer is not None:
            update["answer"] = entry.answer
        if entry.rationale is not None:
            update["rationale"] = entry.rationale
    decided = current.model_copy(update=update)
    decisions[entry.record_id] = decided
    return decided


class DecisionLog:
    """Appends decisions to review.jsonl, one fsync'd line each, and keeps the folded state in memory."""

    def __init__(self, run_dir: Path) -> None:
        self.path = review_path(run_dir)
        self.decisions = load_decisions(run_dir)
        self._lock = threading.Lock()

    def append(self, entry: DecisionEntry) -> Decision:
        """Write one decision durably, then fold it in; returns the record's new state."""
        if entry.action == "edit" and entry.answer is None and entry.rationale is None:
            raise RunError(f"an edit of record {entry.record_id} needs a new answer or rationale")
        line = entry.model_dump_json() + "\n"
        with self._lock:
            trim_torn_tail(self.path)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            return fold(self.decisions, entry)


def decision_counts(decisions: dict[str, Decision]) -> dict[str, int]:
    """How many records are accepted as they are, accepted after an edit, and rejected."""
    values = list(decisions.values())
    return {
        "accepted": sum(d.status == "accepted" and not d.edited for d in values),
        "rejected": sum(d.status == "rejected" for d in values),
        "edited": sum(d.status == "accepted" and d.edited for d in values),
    }


def apply_decisions(records: Iterable[Record], decisions: dict[str, Decision]) -> Iterator[Record]:
    """The records with the review applied: rejects dropped, accepts re-admitted, edits in place."""
    for record in records:
        decision = decisions.get(record.id)
        yield record if decision is None else _applied(record, decision)


def reviewed_records(
    path: Path, decisions: dict[str, Decision], *, kept_only: bool = True
) -> Iterator[Record]:
    """A stage file's records with the review applied (by default only those still kept)."""
    for record in apply_decisions(read_records(path), decisions):
        if record.kept or not kept_only:
            yield record


def decisions_digest(decisions: dict[str, Decision]) -> str:
    """A hash of what the decisions change in the data ("" when there are none), for fingerprints."""
    if not decisions:
        return ""
    effect = sorted(
        (d.record_id, d.status, d.reason, d.answer, d.rationale)
        for d in decisions.values()
        if d.status is not None or d.edited
    )
    return stable_hash(effect)


def _applied(record: Record, decision: Decision) -> Record:
    update: dict[str, object] = {}
    if decision.answer is not None:
        update["answer"] = decision.answer
    if decision.rationale is not None:
        update["rationale"] = decision.rationale
    if decision.status == "rejected":
        verdict = Verdict(score=0.0, passed=False, reason=decision.reason or "rejected in review")
        update.update(kept=False, dropped_by=REVIEW_CRITIC)
    elif decision.status == "accepted":
        verdict = Verdict(score=1.0, passed=True, reason=decision.reason or "accepted in review")
        update.update(kept=True, dropped_by=None)
    else:
        return record.model_copy(update=update)
    update["verdicts"] = {**record.verdicts, REVIEW_CRITIC: verdict}
    return record.model_copy(update=update)
