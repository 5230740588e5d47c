"""The records that flow through stages, and what they carry: samples, verdicts, provenance."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

T = TypeVar("T")


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short hex digest of JSON-serialisable parts, stable across processes and machines."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


class Sample(BaseModel):
    """One teacher completion for a record, parsed or failed."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The completion's text as the teacher returned it.")
    fields: dict[str, Any] = Field(default_factory=dict, description="Fields parsed from the text.")
    prompt_tokens: int = Field(0, ge=0, description="Prompt tokens the call used (shared by its n samples).")
    completion_tokens: int = Field(0, ge=0, description="Tokens of this completion.")
    finish_reason: str | None = Field(None, description="Why the teacher stopped: stop, length, ...")
    cache_key: str = Field("", description="Key of the call in the call cache.")
    error: str | None = Field(None, description="Why this sample failed to parse; None when it parsed.")
    # Out of the repr, which record ids made from samples hash (Record.child), so that they stay as before.
    teacher: str | None = Field(
        None,
        description="The named teacher (the pipeline's `teachers:`) that wrote it; None: its one teacher.",
        repr=False,
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unnamed, so that a one-teacher run writes its records as before.
        dumped: dict[str, Any] = handler(self)
        if dumped.get("teacher", "") is None:
            dumped.pop("teacher")
        return dumped


class Verdict(BaseModel):
    """A critic's judgement of one record."""

    model_config = ConfigDict(extra="forbid")

    score: float | None = Field(None, description="The critic's score; None for a plain pass/fail critic.")
    passed: bool = Field(description="Whether the record passes this critic.")
    reason: str = Field("", description="Why, in a few words, for reviewers.")


class Provenance(BaseModel):
    """Where a record's produced fields came from."""

    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="The stage that produced the fields.")
    teacher: str | None = Field(None, description="Teacher backend name.")
    model: str | None = Field(None, description="Teacher model name.")
    template: str | None = Field(None, description="Prompt template name.")
    template_hash: str | None = Field(None, description="Hash of the template's source.")
    params: dict[str, Any] = Field(default_factory=dict, description="Sampling parameters.")
    time: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class Record(BaseModel):
    """One task item and everything the stages learnt about it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable hash of the input, or of the parent id and the child's content.")
    parent_id: str | None = Field(None, description="The record this one was made from, if any.")
    source_id: str | None = Field(
        None, description="The input record of the current stage that this one came from (for resume)."
    )
    input: dict[str, Any] = Field(description="The task's fields: question, gold answer, ...")
    samples: list[Sample] = Field(default_factory=list, description="Teacher completions.")
    rationale: str | None = Field(None, description="The chosen chain of thought.")
    answer: str | None = Field(None, description="The chosen final answer.")
    agreement: float | None = Field(None, description="Share of samples agreeing with this answer.")
    verdicts: dict[str, Verdict] = Field(default_factory=dict, description="Critic name -> verdict.")
    kept: bool = Field(True, description="Whether the record goes on to later stages.")
    dropped_by: str | None = Field(None, description="Name of the stage or critic that dropped it.")
    provenance: list[Provenance] = Field(default_factory=list, description="One entry per producing stage.")

    @classmethod
    def from_input(cls, fields: dict[str, Any]) -> Record:
        """A new record whose id is the hash of its input fields."""
        return cls(id=stable_hash(fields), input=fields)

    def child(self, **produced: Any) -> Record:
        """A record made from this one; its id hashes this id and the produced content."""
        return Record(
            id=stable_hash(self.id, produced),
            parent_id=self.id,
            source_id=self.id,
            input=self.input,
            provenance=list(self.provenance),
            **produced,
        )

    def drop(self, by: str, reason: str = "") -> Record:
        """This record marked as dropped by `by`, keeping everything it holds."""
        update: dict[str, Any] = {"kept": False, "dropped_by": by}
        if reason and by not in self.verdicts:
            update["verdicts"] = {**self.verdicts, by: Verdict(passed=False, reason=reason)}
        return self.model_copy(update=update)

    @property
    def gold(self) -> str | None:
        """The gold answer, when the task has one."""
        value = self.input.get("answer")
        return None if value is None else str(value)


DATASET_COLUMNS = {
    "id": "string",
    "parent_id": "string",
    "question": "string",
    "gold": "string",
    "rationale": "string",
    "answer": "string",
    "agreement": "float64",
    "input": "string",
    "verdicts": "string",
}
"""Columns of dataset/ and of exports, with their Arrow types. `input` (the task's fields) and `verdicts`
are JSON text, since their keys differ from task to task and run to run (and parquet cannot hold the
empty struct of a run without critics)."""


def dataset_row(record: Record) -> dict[str, Any]:
    """A record as one row of dataset/ (and of an export)."""
    return {
        "id": record.id,
        "parent_id": record.parent_id,
        "question": str(record.input.get("question", "")),
        "gold": record.gold,
        "rationale": record.rationale,
        "answer": record.answer,
        "agreement": record.agreement,
        "input": json.dumps(record.input, ensure_ascii=False, default=str),
        "verdicts": json.dumps({name: v.model_dump() for name, v in record.verdicts.items()}),
    }


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items in order (the last one shorter): how stages batch their requests."""
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group
