"""self_consistency: vote over each record's samples, record the agreement, hand on the rationales.

Each kept rationale becomes a record of its own (a child of the problem), so that critics and
training see one rationale at a time; identical rationales are handed on once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.context import StageContext
from synthdistill.parsing import answers_match, normalize_answer
from synthdistill.records import Record, Sample
from synthdistill.stages import Stage


class SelfConsistencyConfig(BaseModel):
    """Options of the self_consistency stage."""

    model_config = ConfigDict(extra="forbid")

    target: Literal["majority", "gold"] = Field(
        "majority",
        description="The answer voted for: the samples' majority, or the gold answer where the record "
        "has one (STaR keeps the rationales that reach it).",
    )
    keep: Literal["agreeing", "all"] = Field(
        "agreeing",
        description="Which parsed rationales go on: those agreeing with the target, or all of them "
        "(annotated, for a critic such as answer_match to judge).",
    )
    min_agreement: float = Field(
        0.0, ge=0.0, le=1.0, description="Drop a record whose majority answer has a smaller share than this."
    )
    max_per_record: int | None = Field(
        None, ge=1, description="Most rationales handed on per record; None hands on all that qualify."
    )


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Vote per record and yield one child per rationale handed on."""
    config: SelfConsistencyConfig = ctx.config
    agreements = []
    for record in records:
        parsed = [s for s in record.samples if s.error is None and s.fields.get("answer") is not None]
        if not parsed:
            yield record.drop("self_consistency", "no parsed sample to vote on")
            continue
        votes = Counter(normalize_answer(s.fields["answer"]) for s in parsed)
        majority, majority_count = votes.most_common(1)[0]
        share = majority_count / len(record.samples)
        agreements.append(share)
        if share < config.min_agreement:
            yield record.drop("self_consistency", f"majority share {share:.2f} < {config.min_agreement}")
            continue
        target = record.gold if config.target == "gold" and record.gold is not None else majority
        chosen = _choose(parsed, target, config.keep)
        if not chosen:
            yield record.drop(
                "self_consistency", f"no sample agrees with the {config.target} answer {target}"
            )
            continue
        for sample in chosen[: config.max_per_record]:
            answer = normalize_answer(sample.fields["answer"])
            agree = sum(1 for s in parsed if answers_match(s.fields["answer"], answer)) / len(record.samples)
            yield record.child(
                rationale=sample.fields.get("rationale", ""),
                answer=answer,
                agreement=round(agree, 4),
                samples=[sample],
            )
    if agreements:
        ctx.details["mean_majority_share"] = round(sum(agreements) / len(agreements), 4)


def _choose(parsed: list[Sample], target: str, keep: str) -> list[Sample]:
    seen: set[str] = set()
    chosen = []
    for sample in parsed:
        if keep == "agreeing" and not answers_match(sample.fields["answer"], target):
            continue
        text = sample.fields.get("rationale", "") + "\n" + str(sample.fields["answer"])
        if text not in seen:
            seen.add(text)
            chosen.append(sample)
    return chosen


STAGE = Stage(
    name="self_consistency",
    config=SelfConsistencyConfig,
    run=run,
    summary="Vote over samples; hand on agreeing rationales with their agreement.",
)
