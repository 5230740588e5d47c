"""grow, a step of the adversarial rounds: the teacher writes new instructions like the hard ones.

A share (`easy_share`) is modelled on easy items, so the student does not forget them. Each new
instruction records its seed (growth.instructions.grown); what is unparsable, degenerate, or not novel
against the pool and the test split (ROUGE-L, embeddings) is dropped with the reason.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.config import MaxTokens, ParseRetries, Temperature
from synthdistill.growth.instructions import Novelty, degenerate_reason, grown, parse_instruction
from synthdistill.records import Record, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.stages.adversarial.discriminate import HARD
from synthdistill.student.prompts import response_text
from synthdistill.teachers.base import Request


class NoveltyConfig(BaseModel):
    """How unlike the pool a new instruction must be."""

    model_config = ConfigDict(extra="forbid")

    rouge_l: float = Field(0.7, gt=0.0, le=1.0, description="Most ROUGE-L F1 with any pool instruction.")
    embedding: float | None = Field(
        0.9, gt=0.0, le=1.0, description="Most embedding cosine with any pool instruction; None skips it."
    )
    against_test: bool = Field(
        True, description="Whether an instruction like a test item is dropped too (no leak into training)."
    )


class GrowOptions(BaseModel):
    """How new instructions are asked for (options of the adversarial stage, and its grow step)."""

    model_config = ConfigDict(extra="forbid")

    per_round: int = Field(50, ge=1, description="New instructions asked of the teacher each round.")
    easy_share: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of them modelled on easy items, so the student keeps those."
    )
    seeds_from: Literal["hard", "random"] = Field(
        "hard",
        description="What new instructions are modelled on: hard and easy items as discriminated (Lion), or "
        "probed items drawn at random whatever the student did (the control at equal budget).",
    )
    hard_template: str = Field("lion_hard.j2", description="Prompt for a new instruction like a hard one.")
    easy_template: str = Field("lion_easy.j2", description="Prompt for a new instruction like an easy one.")
    temperature: Temperature = 1.0
    # A new instruction.
    max_tokens: MaxTokens = 160
    parse_retries: ParseRetries = 1
    novelty: NoveltyConfig = Field(default_factory=NoveltyConfig, description="The diversity filter.")


class GrowConfig(GrowOptions):
    """The grow step: the adversarial stage's `GrowOptions` and the round."""

    round: int = Field(description="The round, recorded in each new instruction's lineage.")


def _grow(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """New instructions, kept or dropped with the reason, each linked to its seed."""
    config: GrowConfig = ctx.config
    pool = list(records)
    judged = [r for r in pool if HARD in r.verdicts]
    hard = [r for r in judged if not r.verdicts[HARD].passed]
    easy = [r for r in judged if r.verdicts[HARD].passed]
    rng = random.Random(stable_hash(ctx.seed, config.round, "grow"))
    if config.seeds_from == "random":
        # The control: as many seeds, drawn from every probed item, each written up by its own kind's prompt.
        drawn = [rng.choice(judged) for _ in range(config.per_round)] if judged else []
        seeds = [("easy" if r.verdicts[HARD].passed else "hard", r) for r in drawn]
        n_hard = sum(kind == "hard" for kind, _ in seeds)
        n_easy = len(seeds) - n_hard
    else:
        n_easy = round(config.per_round * config.easy_share) if easy else 0
        n_hard = config.per_round - n_easy if hard else 0
        # Every hard seed in turn (shuffled), then again, so each is used about as often as the others.
        seeds = [("hard", s) for s in _cycle(hard, n_hard, rng)]
        seeds += [("easy", s) for s in _cycle(easy, n_easy, rng)]
    ctx.details.update({"asked": len(seeds), "asked_hard": n_hard, "asked_easy": n_easy})
    novelty = Novelty(config.novelty.rouge_l, config.novelty.embedding)
    novelty.remember(pool)
    if config.novelty.against_test:
        novelty.remember(ctx.test_records)
    requests = (
        (
            (kind, seed, i),
            Request(
                messages=ctx.templates.render_messages(
                    config.hard_template if kind == "hard" else config.easy_template,
                    {**seed.input, "record": seed, "answer_text": response_text(seed)},
                ),
                temperature=config.temperature,
                max_tokens=config.max_tokens,
                # Its own seed per round and request: a later round asks anew, not the cache's old answer.
                seed=int(stable_hash(ctx.seed, config.round, i, length=8), 16),
            ),
        )
        for i, (kind, seed) in enumerate(seeds)
    )
    made: list[Record] = []
    for (kind, seed, _), samples in ctx.engine().map(requests, parse_instruction, config.parse_retries):
        template = config.hard_template if kind == "hard" else config.easy_template
        params = {"temperature": config.temperature, "max_tokens": config.max_tokens}
        provenance = ctx.provenance(template, params, stage="grow")
        good = next((s for s in samples if s.error is None), None)
        # parse_instruction's fields only: what the teacher wrote, nothing of the seed's gold answer.
        fields = dict(good.fields) if good is not None else {"question": ""}
        record = grown(seed, fields, kind, config.round).model_copy(
            update={"samples": samples, "provenance": [provenance]}
        )
        if good is None:
            errors = "; ".join(sorted({s.error or "" for s in samples})) or "no sample"
            made.append(record.drop("grow", f"unparsable: {errors}"))
            continue
        reason = degenerate_reason(fields["question"], str(seed.input.get("question", "")))
        made.append(record.drop("grow", f"degenerate: {reason}") if reason else record)
    open_ = [i for i, record in enumerate(made) if record.kept]
    for i, reason in zip(open_, novelty.check([made[i] for i in open_]), strict=True):
        if reason is not None:
            made[i] = made[i].drop("grow", f"not novel: {reason}")
    ctx.details["kept"] = sum(r.kept for r in made)
    yield from made


def _cycle(seeds: list[Record], n: int, rng: random.Random) -> list[Record]:
    out: list[Record] = []
    while seeds and len(out) < n:
        order = list(seeds)
        rng.shuffle(order)
        out += order[: n - len(out)]
    return out


GROW = Stage(
    name="grow",
    config=GrowConfig,
    run=_grow,
    summary="The teacher writes new instructions like the hard (and some easy) ones.",
    inputs=lambda config: [config.hard_template, config.easy_template],
    batch_input=True,
    uses=("teacher",),
)
