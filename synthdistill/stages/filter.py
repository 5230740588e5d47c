"""filter: run critics in order, batch by batch; a record is kept when every critic passes it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthdistill.context import StageContext
from synthdistill.critics import Critic, build_critic
from synthdistill.errors import CriticError
from synthdistill.records import Record
from synthdistill.stages import Stage


class FilterConfig(BaseModel):
    """Options of the filter stage."""

    model_config = ConfigDict(extra="forbid")

    critics: list[str | dict[str, dict[str, Any]]] = Field(
        description="Critics in order, each a name or {name: options}: "
        "[answer_match, {length: {max_words: 200}}]."
    )
    batch_size: int = Field(
        256, ge=1, description="Records scored per critic call (embedding critics batch)."
    )

    @field_validator("critics")
    @classmethod
    def _known(cls, value: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        from synthdistill.registry import registry

        critics = registry("critic")
        for entry in value:
            name = entry if isinstance(entry, str) else next(iter(entry), "")
            if isinstance(entry, dict) and len(entry) != 1:
                raise ValueError(f"a critic entry is a name or one {{name: options}}, got {entry!r}")
            if name not in critics:
                raise ValueError(f"unknown critic {name!r}; valid critics: {', '.join(critics.names())}")
        return value


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Score batches with each critic; record every verdict; drop at the first failing critic."""
    config: FilterConfig = ctx.config
    critics = [build_critic(entry, ctx) for entry in config.critics]
    stats = {c.name: {"seen": 0, "passed": 0, "dropped": 0, "seconds": 0.0} for c in critics}
    iterator = iter(records)
    while batch := list(islice(iterator, config.batch_size)):
        for critic in critics:
            alive = [i for i, r in enumerate(batch) if r.kept]
            if not alive:
                break
            started = time.perf_counter()
            verdicts = _score(critic, [batch[i] for i in alive])
            stat = stats[critic.name]
            stat["seconds"] += time.perf_counter() - started
            for i, verdict in zip(alive, verdicts, strict=True):
                record = batch[i]
                stat["seen"] += 1
                record = record.model_copy(update={"verdicts": {**record.verdicts, critic.name: verdict}})
                if verdict.passed:
                    stat["passed"] += 1
                else:
                    stat["dropped"] += 1
                    record = record.drop(critic.name)
                batch[i] = record
        yield from batch
    for stat in stats.values():
        stat["seconds"] = round(stat["seconds"], 3)
    ctx.details["critics"] = stats


def _score(critic: Critic, records: list[Record]) -> list[Any]:
    try:
        verdicts = critic.score(records)
    except Exception as exc:
        raise CriticError(
            f"critic {critic.name!r} raised {type(exc).__name__}: {exc} on a batch starting at record "
            f"{records[0].id}; fix the critic or remove it from the filter"
        ) from exc
    if len(verdicts) != len(records):
        raise CriticError(
            f"critic {critic.name!r} returned {len(verdicts)} verdicts for {len(records)} records "
            f"(batch starting at record {records[0].id}); it must return one per record"
        )
    return verdicts


STAGE = Stage(
    name="filter",
    config=FilterConfig,
    run=run,
    summary="Judge records with critics; keep those every critic passes.",
)
