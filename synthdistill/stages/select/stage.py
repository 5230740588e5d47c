"""select: keep a budget of the records that reach it; the rest are handed on dropped, each saying why.

By `method`:
- random: a sample drawn with the pipeline's seed; the control that every other method is measured
  against, and needs no model;
- diversity: coverage of the pool in sentence-embedding space (all-MiniLM-L6-v2 by default, over the text
  that `field` names: the question unless told otherwise) by k-center greedy (coverage.py);
- difficulty: the hardest records, by the student's mean token loss on what train would teach it
  (difficulty.py: the student trained by an earlier train stage, else the pipeline's base student), or by
  the teachers' disagreement, 1 - the agreement of self_consistency's vote (`difficulty: disagreement`);
- mix: k-center greedy weighted towards the hard: from the hardest record, each pick is the one that best
  combines new coverage and difficulty, `mix_weight` on difficulty (coverage.py), so that the kept set is
  hard and spread out at any budget (a k-center among the hardest 2 x budget would be diversity alone at half
  the pool). This is the pairing of hard items with diverse ones that DED (Wu et al., 2025) curates its small
  corpus by, in its simplest form: no teacher selection, no length compression, no on-policy roll-outs.

Each record gets a `select` verdict: a kept one its score (the loss, the disagreement, or for diversity the
cosine distance its pick covered) and its rank, a dropped one why (not drawn; easier than the cut; covered by
a kept record, named, at a cosine distance; for mix, its difficulty and the kept record nearest it), so the
review page says why each record was kept or dropped. The manifest's details hold the method, the budget
asked and resolved, the pool's size and a summary of the scores. Ties in difficulty are broken by a draw
from the seed, so a run is repeatable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from synthdistill.critics import field_text
from synthdistill.embeddings import DEFAULT_EMBEDDER, embed
from synthdistill.errors import StageError
from synthdistill.records import Record, Verdict
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.stages.select.coverage import Coverage, k_center
from synthdistill.stages.select.difficulty import completion_losses

NAME = "select"
Method = Literal["random", "diversity", "difficulty", "mix"]
# Which methods read each option, so that an option the chosen method ignores is named, not silently unused.
_READ_BY: dict[str, tuple[str, ...]] = {
    "difficulty": ("difficulty", "mix"),
    "mix_weight": ("mix",),
    "field": ("diversity", "mix"),
    "embedder": ("diversity", "mix"),
}
_LOSS_OPTIONS = ("model", "template", "batch_size")


class SelectConfig(BaseModel):
    """Options of the select stage."""

    model_config = ConfigDict(extra="forbid")

    budget: int | float = Field(
        description="How many records to keep: a number of records (50) or a share of the pool (0.5 keeps "
        "half, rounded to the nearest record and at least one). A number above the pool is an error."
    )
    # Random by default: the control, which needs no model and which every other method must beat.
    method: Method = Field(
        "random",
        description="How the kept records are chosen: a seeded random sample, coverage in embedding space "
        "(k-center greedy), the hardest first, or picks weighing both (mix).",
    )
    difficulty: Literal["loss", "disagreement"] = Field(
        "loss",
        description="What makes a record hard (methods difficulty and mix): the student's mean token loss "
        "on its target, or the teachers' disagreement (1 - agreement of self_consistency's vote, which "
        "must come before select).",
    )
    # Even by default: which half matters more, on which data, is a benchmark's to say.
    mix_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="For mix: the weight of difficulty against new coverage in each pick (0 is diversity "
        "alone from the hardest record, 1 the hardest first).",
    )
    field: str = Field(
        "input.question",
        description="The text embedded for diversity and mix: input.question, rationale, text (rationale and "
        "answer), or a jinja expression such as '{{ question }} {{ rationale }}'.",
    )
    embedder: str = Field(
        DEFAULT_EMBEDDER, description="Sentence-transformers model: embedded alias, folder or cached id."
    )
    model: str | None = Field(
        None,
        description="The student whose loss measures difficulty: an alias, a folder (a LoRA adapter too) or "
        "a hub id; None is the run's trained student when a train stage came before, else the pipeline's.",
    )
    template: str = Field(
        "cot_student.j2", description="The student's prompt template for the loss (as train uses it)."
    )
    # The logits of a batch take batch x completion tokens x vocabulary floats: 8 x 200 x 49k is 300 MB.
    batch_size: int = Field(8, ge=1, description="Records per forward pass of the student's loss.")

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"budget is a number of records (50) or a share of the pool (0.5), got {value!r}"
            )
        if isinstance(value, int) and value < 1:
            raise ValueError(f"budget {value} keeps no record; give at least 1, or a share such as 0.5")
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError(
                f"budget {value} is neither a share of the pool (above 0, at most 1) nor a number of records "
                f"(a whole number such as {max(1, round(value))}); give one of those"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SelectConfig:
        for key, methods in _READ_BY.items():
            if key in self.model_fields_set and self.method not in methods:
                raise ValueError(
                    f"`{key}` is read by method {' and '.join(methods)} only; remove it or change the method"
                )
        for key in _LOSS_OPTIONS:
            if key in self.model_fields_set and not self.scores_loss:
                raise ValueError(
                    f"`{key}` is read only when the student's loss measures difficulty (method difficulty or "
                    "mix, difficulty: loss); remove it"
                )
        before = (info.context or {}).get("stages_before")
        uses_agreement = self.method in ("difficulty", "mix") and self.difficulty == "disagreement"
        if uses_agreement and before is not None and "self_consistency" not in before:
            raise ValueError(
                "difficulty: disagreement reads the agreement of self_consistency's vote, and no "
                "self_consistency stage comes before select; put one before it, or use difficulty: loss"
            )
        return self

    @property
    def scores_loss(self) -> bool:
        """Whether the student's loss is computed."""
        return self.method in ("difficulty", "mix") and self.difficulty == "loss"


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Keep the budget by the method; hand on every record, the dropped ones marked with why."""
    config: SelectConfig = ctx.config
    pool = list(records)
    budget = _resolve_budget(config.budget, len(pool), ctx)
    ctx.details.update(method=config.method, budget=budget, budget_asked=config.budget, pool=len(pool))
    if not pool:
        ctx.log.warning("no record reached select; nothing to choose from")
        return
    if ctx.run.dry_run:
        # A dry run plans teacher calls; the budget's check above is all it needs of this stage.
        yield from pool
        return
    choose = {"random": _random, "diversity": _diversity, "difficulty": _difficulty, "mix": _mix}
    verdicts = choose[config.method](pool, budget, config, ctx)
    for record, verdict in zip(pool, verdicts, strict=True):
        record = record.model_copy(update={"verdicts": {**record.verdicts, NAME: verdict}})
        yield record if verdict.passed else record.drop(NAME)
    ctx.details["kept"] = sum(v.passed for v in verdicts)


def _resolve_budget(budget: int | float, pool: int, ctx: StageContext) -> int:
    """The number of records to keep from a pool of `pool`; a number above it is an error naming both."""
    if isinstance(budget, float):
        return max(1, math.floor(budget * pool + 0.5)) if pool else 0
    if budget > pool:
        key = f"stages[{ctx.spec.index - 1}].{NAME}.budget"
        raise StageError(
            f"budget {budget} ({key} in {ctx.pipeline.path.name}) is above the {pool} records that reached "
            f"select; lower it, give a share of the pool (budget: 0.5), or generate more (data.split.train)",
            stage=ctx.spec.name,
        )
    return budget


def _random(pool: list[Record], budget: int, config: SelectConfig, ctx: StageContext) -> list[Verdict]:
    drawn = set(random.Random(ctx.seed).sample(range(len(pool)), budget))
    sample = f"the random sample of {budget} of {len(pool)} drawn with seed {ctx.seed}"
    return [
        Verdict(passed=True, reason=f"in {sample}")
        if i in drawn
        else Verdict(passed=False, reason=f"not in {sample}")
        for i in range(len(pool))
    ]


def _diversity(pool: list[Record], budget: int, config: SelectConfig, ctx: StageContext) -> list[Verdict]:
    coverage = _k_center(pool, budget, config, ctx)
    picked = {pick: order for order, pick in enumerate(coverage.picks, start=1)}
    verdicts = []
    for i in range(len(pool)):
        if i in picked:
            gain = coverage.gains[picked[i] - 1]
            why = (
                "the most central record"
                if picked[i] == 1
                else f"cosine distance {gain:.3f} from the picks before it"
            )
            verdicts.append(
                Verdict(score=gain, passed=True, reason=f"k-center pick {picked[i]} of {budget}: {why}")
            )
        else:
            near, distance = pool[coverage.nearest[i]].id, coverage.distance[i]
            reason = f"covered by kept record {near} at cosine distance {distance:.3f}"
            verdicts.append(Verdict(score=distance, passed=False, reason=reason))
    return verdicts


def _difficulty(pool: list[Record], budget: int, config: SelectConfig, ctx: StageContext) -> list[Verdict]:
    scores, ranks, label = _hardness(pool, config, ctx)
    n = len(pool)
    cut = sorted(scores, reverse=True)[budget - 1]
    verdicts = []
    for score, rank in zip(scores, ranks, strict=True):
        if rank <= budget:
            reason = f"{label} {score:.3f}: rank {rank} of {n}, among the {budget} hardest"
        else:
            reason = (
                f"{label} {score:.3f}: rank {rank} of {n}, easier than the {budget} hardest (cut {cut:.3f})"
            )
        verdicts.append(Verdict(score=score, passed=rank <= budget, reason=reason))
    _summarize(scores, [v.passed for v in verdicts], ctx)
    return verdicts


def _mix(pool: list[Record], budget: int, config: SelectConfig, ctx: StageContext) -> list[Verdict]:
    import numpy as np

    scores, ranks, label = _hardness(pool, config, ctx)
    n = len(pool)
    # The hardest 1, the easiest 0, evenly between by rank (ties already broken by the seed).
    hardness = np.array([1.0 - (rank - 1) / max(n - 1, 1) for rank in ranks])
    coverage = _k_center(pool, budget, config, ctx, hardness=hardness, weight=config.mix_weight)
    picked = {pick: order for order, pick in enumerate(coverage.picks, start=1)}
    verdicts = []
    for i in range(n):
        hard = f"{label} {scores[i]:.3f} (rank {ranks[i]} of {n})"
        if i in picked:
            gain = coverage.gains[picked[i] - 1]
            why = (
                "the hardest record"
                if picked[i] == 1
                else f"cosine distance {gain:.3f} from the picks before it"
            )
            reason = f"{hard}; mix pick {picked[i]} of {budget} ({config.mix_weight:g} on difficulty): {why}"
        else:
            near, distance = pool[coverage.nearest[i]].id, coverage.distance[i]
            reason = f"{hard}; not picked: nearest kept record {near} at cosine distance {distance:.3f}"
        verdicts.append(Verdict(score=scores[i], passed=i in picked, reason=reason))
    _summarize(scores, [v.passed for v in verdicts], ctx)
    return verdicts


def _hardness(
    pool: list[Record], config: SelectConfig, ctx: StageContext
) -> tuple[list[float], list[int], str]:
    """Each record's difficulty, its rank from the hardest (1) down (ties by a seeded draw), and its label."""
    if config.difficulty == "disagreement":
        missing = next((r for r in pool if r.agreement is None), None)
        if missing is not None:
            raise StageError(
                "difficulty: disagreement reads the agreement of self_consistency's vote, and this record "
                "has none; put self_consistency before select, or use difficulty: loss",
                stage=ctx.spec.name,
                record_id=missing.id,
            )
        scores = [round(1.0 - (r.agreement or 0.0), 6) for r in pool]
        label = "teacher disagreement"
    else:
        model = config.model or ctx.artifacts.get("student_model") or ctx.pipeline.config.student.model
        ctx.details["scored_by"] = str(model)
        losses = completion_losses(
            pool, model, ctx.templates, config.template, device=ctx.device, batch_size=config.batch_size
        )
        scores = [round(loss, 6) for loss in losses]
        label = "student loss"
    ctx.details["difficulty"] = config.difficulty
    draw = list(range(len(pool)))
    random.Random(ctx.seed).shuffle(draw)
    order = sorted(range(len(pool)), key=lambda i: (-scores[i], draw[i]))
    ranks = [0] * len(pool)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return scores, ranks, label


def _k_center(
    records: list[Record], budget: int, config: SelectConfig, ctx: StageContext, **weighting: Any
) -> Coverage:
    vectors = embed([field_text(record, config.field) for record in records], config.embedder)
    coverage = k_center(vectors, budget, **weighting)
    picked = set(coverage.picks)
    dropped = [d for i, d in enumerate(coverage.distance) if i not in picked]
    ctx.details["coverage"] = {
        "field": config.field,
        "embedder": config.embedder,
        # How far the least-covered dropped record is from its nearest kept one: the coverage radius.
        "max_distance_to_kept": round(max(dropped), 4) if dropped else 0.0,
        "mean_distance_to_kept": round(sum(dropped) / len(dropped), 4) if dropped else 0.0,
    }
    return coverage


def _summarize(scores: list[float], kept: list[bool], ctx: StageContext) -> None:
    """Min, mean and max of the scores, and the means of the kept and the dropped, for the manifest."""

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    ctx.details["scores"] = {
        "min": round(min(scores), 4),
        "mean": mean(scores),
        "max": round(max(scores), 4),
        "kept_mean": mean([s for s, k in zip(scores, kept, strict=True) if k]),
        "dropped_mean": mean([s for s, k in zip(scores, kept, strict=True) if not k]),
    }


STAGE = Stage(
    name=NAME,
    config=SelectConfig,
    run=run,
    summary="Keep a budget of the records: seeded random, coverage (k-center), the hardest, or a mix.",
    inputs=lambda config: [config.template] if config.scores_loss else [],
    batch_input=True,
    # The base student scores difficulty when no train stage came before.
    uses=("student",),
    needs_answers=lambda config: config.scores_loss,
)
