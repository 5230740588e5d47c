"""star: STaR's outer loop. The newest student writes the rationales, the next student learns from them.

STaR (Zelikman et al., 2022) iterates: the model samples rationales for every training problem, keeps
those that reach the gold answer (and, with rationalisation, those it writes when given the answer as a
hint), and the next model is fine-tuned from the base on what was kept. Each round here runs its steps in
`NN-star/round-k/`, each skipped or resumed by fingerprint like the pipeline's own stages
(runs.steps.Steps.nested), with the newest student standing in for the teacher:

1. generate: the newest student samples rationales for every item of the train split, on its own
   prompt (the train template) unless `generate` says otherwise;
2. self_consistency and filter: as the pipeline's own stages of those names are configured (or as
   `self_consistency` and `filter` say), so rationalisation and the critics work as they do there;
3. train: the next student, from the base, on the union of what every round kept so far and the records
   this stage was handed (the first student's data), each rationale once;
4. evaluate: its accuracy on the test split.

`round-0/` scores the student this stage was handed, when no evaluate stage before it did. Rounds
repeat `rounds` times, or stop once a round's accuracy is no higher than the best so far; the best
round's student becomes the run's student, and its training records are what the stage hands on.
Raising `rounds` later continues from the last finished round: the rounds' fingerprints leave `rounds`
and `stop_when_flat` out. The stopping rule looks at the test split, as evaluate reports it: give the
pipeline a `data.test_source` of its own where that split must stay untouched by any choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.errors import StageError
from synthdistill.records import Record, stable_hash
from synthdistill.registry import registry
from synthdistill.runs.context import StageContext
from synthdistill.runs.folder import StageManifest, read_records
from synthdistill.runs.steps import Stage, Steps
from synthdistill.stages.evaluate.stage import EvaluateConfig
from synthdistill.stages.filter import FilterConfig, critic_files, critic_templates
from synthdistill.stages.generate import GenerateConfig
from synthdistill.stages.self_consistency import SelfConsistencyConfig
from synthdistill.stages.train.stage import TrainConfig
from synthdistill.student.prompts import normalize_question


class StarConfig(BaseModel):
    """Options of the star stage; a step's options left out are those of the pipeline's stage of its name."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(2, ge=1, le=50, description="Rounds of sampling by the newest student and training.")
    stop_when_flat: bool = Field(
        True, description="Whether to stop once a round's accuracy is no higher than the best so far."
    )
    generate: GenerateConfig | None = Field(
        None,
        description="How the newest student samples; None: on the train template, with the n, temperature "
        "and max_tokens of the pipeline's generate stage.",
    )
    self_consistency: SelfConsistencyConfig | None = Field(
        None, description="Voting (and rationalisation); None: the pipeline's self_consistency stage's."
    )
    filter: FilterConfig | None = Field(None, description="Critics; None: the pipeline's filter stage's.")
    train: TrainConfig | None = Field(None, description="How each student trains; None: the train stage's.")
    evaluate: EvaluateConfig | None = Field(
        None, description="How each student is scored; None: the pipeline's evaluate stage's prompt, length."
    )


@dataclass(frozen=True)
class _Plan:
    """The options of a round's steps, resolved; a voting or critic step the pipeline lacks is None."""

    generate: GenerateConfig
    self_consistency: SelfConsistencyConfig | None
    filter: FilterConfig | None
    train: TrainConfig
    evaluate: EvaluateConfig

    def checks(self) -> list[tuple[str, BaseModel]]:
        """The steps between sampling and training, by stage name."""
        named = (("self_consistency", self.self_consistency), ("filter", self.filter))
        return [(name, config) for name, config in named if config is not None]

    def dump(self) -> dict[str, Any]:
        steps = {"generate": self.generate, **dict(self.checks()), "train": self.train}
        return {
            name: config.model_dump(mode="json")
            for name, config in {**steps, "evaluate": self.evaluate}.items()
        }


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Run the rounds; leave the best round's student and hand on the records it was trained on."""
    config: StarConfig = ctx.config
    first = list(records)
    plan = _plan(config, ctx)
    if ctx.artifacts.get("student_model") is None:
        raise StageError("star needs a first student: put a train stage before it", stage=ctx.spec.name)
    questions = ctx.train_records or _questions(first)
    chain = stable_hash(
        ctx.upstream,
        plan.dump(),
        {name: ctx.templates.hash(name) for name in _templates(plan)},
    )
    best = _Best(0, str(ctx.artifacts["student_model"]), first, _first_accuracy(ctx, plan, chain))
    rounds: list[dict[str, Any]] = [{"round": 0, "student": best.student, "accuracy": best.accuracy}]
    ctx.details["rounds"] = rounds
    union = _Union(first)
    ran = False
    for k in range(1, config.rounds + 1):
        student = Path(ctx.artifacts["student_model"])
        sub = Steps.nested(
            ctx, ctx.folder / f"round-{k}", stable_hash(chain, k), ran=ran, teacher=ctx.local_model(student)
        )
        stats = _round(k, sub, questions, union, plan, ctx)
        ran = sub.ran
        rounds.append(stats)
        ctx.details["rounds"] = rounds
        ctx.log.info("round %d: %s", k, stats)
        accuracy = stats["accuracy"]
        if accuracy is None or best.accuracy is None or accuracy > best.accuracy:
            best = _Best(k, stats["student"], union.records(), accuracy)
        elif config.stop_when_flat:
            stats["stopped"] = f"accuracy {accuracy} is no higher than round {best.round}'s, {best.accuracy}"
            break
    ctx.artifacts["student_model"] = Path(best.student)
    ctx.details.update(best_round=best.round, best_accuracy=best.accuracy, records=len(best.records))
    yield from best.records


def _round(
    k: int,
    sub: Steps,
    questions: list[Record],
    union: _Union,
    plan: _Plan,
    ctx: StageContext,
) -> dict[str, Any]:
    """One round as a sub-run: the newest student samples, what passes joins the union, the next trains."""
    stats: dict[str, Any] = {"round": k, "sampled_by": str(ctx.artifacts["student_model"])}
    made = [sub.step(_stage("generate"), plan.generate, lambda: questions)]
    for name, config in plan.checks():
        made.append(sub.step(_stage(name), config, _read(sub, made[-1])))
    ctx.release_local_models()
    kept = list(read_records(sub.records_file(made[-1].folder), kept_only=True))
    solved = {normalize_question(r.input.get("question", r.id)) for r in kept}
    stats.update(
        questions=len(questions),
        solved=len(solved),
        kept=len(kept),
        rationalized=sum(entry.details.get("rationalized", 0) for entry in made),
        new=union.add(kept),
        union=union.size,
    )
    sub.step(_stage("train"), plan.train, union.records)
    ctx.release_local_models()
    stats["student"] = str(ctx.artifacts["student_model"])
    stats["accuracy"] = _accuracy(sub, plan, ctx)
    return stats


def _first_accuracy(ctx: StageContext, plan: _Plan, chain: str) -> float | None:
    """The accuracy of the student this stage was handed: an earlier evaluate's, else scored in round-0/."""
    scored = ctx.metrics.get("student", {})
    if "accuracy" in scored:
        return float(scored["accuracy"])
    if not ctx.test_records:
        return None
    return _accuracy(Steps.nested(ctx, ctx.folder / "round-0", stable_hash(chain, 0)), plan, ctx)


def _accuracy(sub: Steps, plan: _Plan, ctx: StageContext) -> float | None:
    if not ctx.test_records:
        return None
    sub.step(_stage("evaluate"), plan.evaluate, lambda: [])
    ctx.release_local_models()
    accuracy = ctx.metrics.get("student", {}).get("accuracy")
    return None if accuracy is None else float(accuracy)


@dataclass(frozen=True)
class _Best:
    """The round whose student is best so far, and the records it was trained on."""

    round: int
    student: str
    records: list[Record]
    accuracy: float | None


class _Union:
    """The records every round kept so far, each (question, rationale) once, in the order they came."""

    def __init__(self, first: list[Record]) -> None:
        self._records: dict[tuple[str, str], Record] = {}
        self.add(first)

    def add(self, records: Iterable[Record]) -> int:
        """Add `records`; how many were new."""
        before = len(self._records)
        for record in records:
            key = (normalize_question(record.input.get("question", "")), (record.rationale or "").strip())
            # A record handed on by a step holds its source's id; trained on again, it is one of its own.
            self._records.setdefault(key, record.model_copy(update={"source_id": None}))
        return len(self._records) - before

    @property
    def size(self) -> int:
        return len(self._records)

    def records(self) -> list[Record]:
        return list(self._records.values())


def _plan(config: StarConfig, ctx: StageContext) -> _Plan:
    """Each step's options: the stage's own, else those of the pipeline's stage of that name."""

    def pipeline_stage(name: str) -> Any:
        found = [s.config for s in ctx.pipeline.stages if s.name == name and s.index != ctx.spec.index]
        return found[0] if found else None

    train = config.train or _train_before(ctx)
    generate = config.generate or _sampling(train, pipeline_stage("generate"))
    evaluate = config.evaluate or pipeline_stage("evaluate")
    return _Plan(
        generate=generate,
        self_consistency=config.self_consistency or pipeline_stage("self_consistency"),
        filter=config.filter or pipeline_stage("filter"),
        train=train,
        evaluate=(
            evaluate.model_copy(update={"base": False, "teacher": False, "plot": False, "judge": None})
            if evaluate is not None
            else EvaluateConfig(
                template=train.template, max_tokens=generate.max_tokens, base=False, plot=False
            )
        ),
    )


def _sampling(train: TrainConfig, generate: GenerateConfig | None) -> GenerateConfig:
    """The student samples on its own prompt, as many and as long as the teacher did."""
    if generate is None or generate.recorded is not None:
        return GenerateConfig(template=train.template)
    return GenerateConfig(
        template=train.template,
        n=generate.n,
        temperature=generate.temperature,
        top_p=generate.top_p,
        max_tokens=generate.max_tokens,
        stop=generate.stop,
    )


def _train_before(ctx: StageContext) -> TrainConfig:
    # preflight makes sure that a train stage comes before this one (needs_student).
    found = [s for s in ctx.pipeline.stages if s.name == "train" and s.index < ctx.spec.index][-1].config
    assert isinstance(found, TrainConfig)
    return found


def _questions(records: list[Record]) -> list[Record]:
    """One bare record per question (a run context without the train split: the records handed in)."""
    seen: dict[str, Record] = {}
    for record in records:
        key = normalize_question(record.input.get("question", record.id))
        if key not in seen:
            seen[key] = Record(id=record.source_id or record.id, input=record.input)
    return list(seen.values())


def _read(sub: Steps, entry: StageManifest) -> Any:
    path = sub.records_file(entry.folder)
    return lambda: read_records(path, kept_only=True)


def _stage(name: str) -> Stage:
    return registry("stage").get(name)


def _templates(plan: _Plan) -> list[str]:
    names = [plan.generate.template, plan.train.template, plan.evaluate.template]
    if plan.filter is not None:
        names += critic_templates(plan.filter)
    if plan.self_consistency is not None:
        names += _stage("self_consistency").inputs(plan.self_consistency)
    return names


def _declared(config: StarConfig) -> list[str]:
    """The templates the stage's own options name (the pipeline's stages declare theirs)."""
    names = [step.template for step in (config.generate, config.train, config.evaluate) if step is not None]
    if config.filter is not None:
        names += critic_templates(config.filter)
    if config.self_consistency is not None:
        names += _stage("self_consistency").inputs(config.self_consistency)
    return names


STAGE = Stage(
    name="star",
    config=StarConfig,
    run=run,
    summary="STaR rounds: the newest student samples rationales, keeps the right ones, the next one trains.",
    inputs=_declared,
    batch_input=True,
    needs_student=True,
    needs_gold=True,
    uses=("teacher", "student"),
    variables=lambda config: {"record", "hint"},
    files=lambda config, base_dir, run_dir: (
        critic_files(config.filter, base_dir, run_dir) if config.filter is not None else []
    ),
)
