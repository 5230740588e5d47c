"""Counters of teacher calls: one type for an engine's live counts, a stage's share and a run's totals.

The engine adds to a `TeacherCounters` as it works; a stage's manifest entry holds the difference of two
snapshots (`since`); the run's manifest holds the sum over its stages (`total`). A dry run counts what
it would send in a `Planned`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from pydantic import BaseModel, ConfigDict


class _Counts(BaseModel):
    """Numeric fields that add up."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def total(cls, parts: Iterable[BaseModel]) -> Self:
        """The sum of `parts`, field by field."""
        summed = cls()
        for part in parts:
            summed.add(part)
        return summed

    def add(self, other: BaseModel) -> None:
        """Add `other`'s fields into these."""
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class TeacherCounters(_Counts):
    """Calls to teachers and what they cost, counted in requests (`calls`, `cache_hits`) and tokens."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0
    hedges: int = 0
    cost_usd: float = 0.0

    def since(self, before: TeacherCounters) -> dict[str, int | float]:
        """The counters gained since `before`."""
        return {name: getattr(self, name) - getattr(before, name) for name in type(self).model_fields}


class Planned(_Counts):
    """What a dry run would have sent: requests and samples the cache cannot answer, and their worst case."""

    requests: int = 0
    samples: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
