"""self_consistency: vote over each record's samples, record the agreement, hand on the rationales.

Each kept rationale becomes a record of its own (a child of the problem), so that critics and
training see one rationale at a time; identical rationales are handed on once. Answers are put in
their task type's canonical form before the vote (scoring/scorer.py: "1,000" and "1000" are one
answer, and so are "(c) house", "c" and "House" when house is choice c), and every record, kept or
dropped, carries the share of its samples that agree with its answer. An answer that names none of an
item's choices or labels gets no vote.

With several teachers (generate's `teachers: [a, b]`), a record's samples are every teacher's, so the
vote goes across teachers; `teacher_weights` weighs each sample's vote by its teacher, and a child also
carries the other samples that agree with its answer (after its own), so that the teacher_agreement
critic can count the teachers behind it.

With `rationalize`, a problem whose samples all miss the gold answer is asked again with the gold
answer as a hint (STaR's rationalisation). The hint goes only into that request: the child's input
is the problem's, so the student's training prompt never sees it. A hinted rationale is kept only
when it reaches the gold answer, states it in its own last step with right arithmetic, and does not
mention the hint; its provenance says `rationalized: true`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from synthdistill.critics.choice_consistency import check_choice_consistency
from synthdistill.critics.consistency import check_consistency
from synthdistill.parsing import parse_rationale
from synthdistill.records import Provenance, Record, Sample, Verdict
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.scoring.scorer import Scorer
from synthdistill.teachers.base import Request

STAGE_NAME = "self_consistency"
# Phrases by which a hinted rationale gives away that it was told the answer.
_HINT_LEAK = re.compile(
    r"\bhint\b|\b(?:we are|i was|i am|we were|you are) (?:told|given)\b"
    r"|\bgiven answer\b|\bcorrect answer is\b",
    re.IGNORECASE,
)
# Records handed to the teacher together for rationalisation; the rest stream through.
_CHUNK = 64


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
    teacher_weights: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="How much a sample's vote counts, by the named teacher that wrote it ({a: 2.0, b: 1.0}); "
        "a teacher not listed counts 1. Shares (min_agreement, agreement) are then shares of the weight. "
        "Empty counts every sample once.",
    )
    # STaR's rationalisation: off by default, since it costs teacher calls and its rationales need checking.
    rationalize: bool = Field(
        False,
        description="Whether a problem with a gold answer that no sample reaches is sampled again with the "
        "gold answer as a hint (STaR's rationalisation); kept rationales are marked in provenance.",
    )
    rationalize_template: str = Field(
        "cot_rationalize.j2", description="Template of the hinted request; it gets `hint`, the gold answer."
    )
    rationalize_n: int = Field(2, ge=1, le=32, description="Hinted samples asked for per unsolved problem.")
    rationalize_temperature: float = Field(0.7, ge=0.0, le=2.0, description="Temperature of hinted samples.")
    rationalize_max_tokens: int = Field(192, ge=1, description="Most new tokens per hinted sample.")
    check_rationalized: bool = Field(
        True,
        description="Whether a hinted rationale must state the answer in its last step with right "
        "arithmetic and not mention the hint (LAB.md: hinted rationales often just land on the number).",
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unset, so that the fingerprints of runs made before the option existed still hold.
        dumped: dict[str, Any] = handler(self)
        if not self.teacher_weights:
            dumped.pop("teacher_weights", None)
        return dumped


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Vote per record and yield one child per rationale handed on (inputs in order)."""
    config: SelfConsistencyConfig = ctx.config
    scorer = Scorer(ctx.pipeline.config.data.task)
    shares: list[float] = []
    rationalized = 0
    iterator = iter(records)
    while chunk := list(islice(iterator, _CHUNK)):
        outcomes = [_vote(record, config, shares, scorer) for record in chunk]
        unsolved = [record for record, out in zip(chunk, outcomes, strict=True) if out is None]
        hinted = _rationalize(unsolved, ctx, config, scorer) if unsolved else {}
        for record, out in zip(chunk, outcomes, strict=True):
            for produced in out if out is not None else hinted[record.id]:
                rationalized += _is_rationalized(produced)
                yield produced
    if shares:
        ctx.details["mean_majority_share"] = round(sum(shares) / len(shares), 4)
    if config.rationalize:
        ctx.details["rationalized"] = rationalized


def _vote(
    record: Record, config: SelfConsistencyConfig, shares: list[float], scorer: Scorer
) -> list[Record] | None:
    """The records handed on for one problem, or None when it needs rationalisation."""
    voted = [(s, scorer.key(s.fields.get("answer"), record)) for s in record.samples if s.error is None]
    parsed = [s for s, key in voted if key is not None]
    gold = record.gold

    def agrees(sample: Sample, answer: object) -> bool:
        return scorer.same(sample.fields["answer"], answer, record)

    def weight(samples: Iterable[Sample]) -> float:
        return sum(config.teacher_weights.get(s.teacher or "", 1.0) for s in samples)

    total = weight(record.samples)

    if config.rationalize and gold is not None and not any(agrees(s, gold) for s in parsed):
        return None
    if not parsed:
        return [record.drop(STAGE_NAME, "no parsed sample to vote on")]
    votes: dict[object, float] = {}
    for sample, key in voted:
        if key is not None:
            votes[key] = votes.get(key, 0.0) + weight([sample])
    top = max(votes, key=votes.__getitem__)  # of a tie, the answer voted for first
    majority_weight = votes[top]
    majority = scorer.canonical(next(s for s, key in voted if key == top).fields["answer"], record)
    share = majority_weight / total
    shares.append(share)
    if share < config.min_agreement:
        return [
            record.model_copy(update={"agreement": round(share, 4)}).drop(
                STAGE_NAME, f"majority share {share:.2f} < {config.min_agreement}"
            )
        ]
    target = gold if config.target == "gold" and gold is not None else majority
    chosen = [s for s in _distinct(parsed) if config.keep == "all" or agrees(s, target)]
    if not chosen:
        target_share = weight(s for s in parsed if agrees(s, target)) / total
        return [
            record.model_copy(update={"agreement": round(target_share, 4)}).drop(
                STAGE_NAME, f"no sample agrees with the {config.target} answer {target}"
            )
        ]
    children = []
    for sample in chosen[: config.max_per_record]:
        answer = scorer.canonical(sample.fields["answer"], record)
        agreeing = [s for s in parsed if agrees(s, answer)]
        # Named teachers' agreeing samples go along (after the rationale's own), for teacher_agreement.
        backing = [s for s in agreeing if s is not sample and s.teacher is not None]
        children.append(
            record.child(
                rationale=sample.fields.get("rationale", ""),
                answer=answer,
                agreement=round(weight(agreeing) / total, 4),
                samples=[sample, *backing],
            )
        )
    return children


def _distinct(parsed: list[Sample]) -> list[Sample]:
    """The samples in order, each rationale and answer once."""
    seen: set[str] = set()
    chosen = []
    for sample in parsed:
        text = sample.fields.get("rationale", "") + "\n" + str(sample.fields["answer"])
        if text not in seen:
            seen.add(text)
            chosen.append(sample)
    return chosen


def _rationalize(
    records: list[Record], ctx: StageContext, config: SelfConsistencyConfig, scorer: Scorer
) -> dict[str, list[Record]]:
    """Ask the teacher again with the gold answer as a hint; keep the checked rationales that reach it."""
    provenance = ctx.provenance(
        config.rationalize_template,
        {
            "rationalized": True,
            "hint": "gold answer",
            "n": config.rationalize_n,
            "temperature": config.rationalize_temperature,
            "max_tokens": config.rationalize_max_tokens,
        },
    )

    def requests() -> Iterator[tuple[Record, Request]]:
        for record in records:
            # The hint lives only in this request's variables, never in the record's input.
            variables = {**record.input, "record": record, "hint": record.gold}
            yield (
                record,
                Request(
                    messages=ctx.templates.render_messages(config.rationalize_template, variables),
                    n=config.rationalize_n,
                    temperature=config.rationalize_temperature,
                    max_tokens=config.rationalize_max_tokens,
                    seed=ctx.seed,
                ),
            )

    results: dict[str, list[Record]] = {}
    for record, samples in ctx.engine().map(requests(), parse_rationale):
        results[record.id] = _hinted_children(record, samples, provenance, config, scorer)
    return results


def _hinted_children(
    record: Record,
    samples: list[Sample],
    provenance: Provenance,
    config: SelfConsistencyConfig,
    scorer: Scorer,
) -> list[Record]:
    children: list[Record] = []
    reasons: list[str] = []
    seen: set[str] = set()
    for sample in samples:
        problem = _hinted_problem(sample, record, scorer, config.check_rationalized)
        if problem:
            reasons.append(problem)
            continue
        rationale = str(sample.fields.get("rationale", ""))
        if rationale in seen:
            continue
        seen.add(rationale)
        child = record.child(
            rationale=rationale,
            answer=scorer.canonical(sample.fields["answer"], record),
            agreement=0.0,  # no unhinted sample reached it
            samples=[sample],
        )
        children.append(child.model_copy(update={"provenance": [*child.provenance, provenance]}))
    if children:
        return children
    why = "; ".join(sorted(set(reasons))) or "no hinted sample"
    return [record.model_copy(update={"agreement": 0.0}).drop(STAGE_NAME, f"rationalisation failed: {why}")]


def _hinted_problem(sample: Sample, record: Record, scorer: Scorer, check: bool) -> str:
    """Why a hinted sample cannot be kept, or "" when it can."""
    if sample.error is not None:
        return f"unparsable ({sample.error})"
    if not scorer.same(sample.fields.get("answer"), record.gold, record):
        return f"missed the hinted answer ({sample.fields.get('answer')})"
    rationale = str(sample.fields.get("rationale", ""))
    if not check:
        return ""
    if _HINT_LEAK.search(rationale):
        return "mentions the hint"
    verdict = _consistency(rationale, record, scorer)
    return "" if verdict.passed else verdict.reason


def _consistency(rationale: str, record: Record, scorer: Scorer) -> Verdict:
    """A multiple-choice rationale names the gold choice; any other states the gold answer last."""
    gold = record.gold or ""
    choices = record.input.get(scorer.task.choices_field)
    if scorer.type_of(record) == "choice" and isinstance(choices, list | dict):
        return check_choice_consistency(rationale, gold, choices)
    return check_consistency(rationale, gold)


def _is_rationalized(record: Record) -> bool:
    return (
        any(p.params.get("rationalized") for p in record.provenance if p.stage == STAGE_NAME) and record.kept
    )


def _inputs(config: SelfConsistencyConfig) -> list[str]:
    return [config.rationalize_template] if config.rationalize else []


STAGE = Stage(
    name=STAGE_NAME,
    config=SelfConsistencyConfig,
    run=run,
    summary="Vote over samples; hand on agreeing rationales with their agreement; optionally rationalise.",
    inputs=_inputs,
    uses=("teacher",),
    variables=lambda config: {"record", "hint"},
    needs_outputs=lambda config: True,
)
