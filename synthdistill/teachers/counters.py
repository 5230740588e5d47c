"""Counters of teacher calls: one type for an engine's live counts, a stage's share and a run's totals.

The engine adds to a `TeacherCounters` as it works; a stage's manifest entry holds the difference of two
snapshots (`since`); the run's manifest holds the sum over its stages (`total`). A dry run counts what
it would send in a `Planned`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from pydantic import BaseModel, ConfigDict

from synthdistill.teachers.base import Request
from synthdistill.teachers.costs import Price, estimate_tokens


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


class _Spend(_Counts):
    """Tokens and what they cost, counted alike for calls made and calls planned."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class TeacherCounters(_Spend):
    """Calls to teachers and what they cost, counted in requests and tokens.

    `calls` are requests sent (a hedged copy or a retry is not another call), `cache_hits` requests the
    call cache answered whole, so calls + cache_hits is the requests a stage asked for.
    """

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    hedges: int = 0

    def since(self, before: TeacherCounters) -> dict[str, int | float]:
        """The counters gained since `before`."""
        return {name: getattr(self, name) - getattr(before, name) for name in type(self).model_fields}


class Planned(_Spend):
    """What a dry run would have sent: requests and samples the cache cannot answer, and their worst case."""

    requests: int = 0
    samples: int = 0
    cached: int = 0

    def count(self, request: Request, price: Price) -> None:
        """Count `request`, whose `n` samples the cache cannot answer, as one call a real run would send."""
        prompt, completion = estimate_tokens(request)
        self.requests += 1
        self.samples += request.n
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost_usd += price.cost(prompt, completion)
