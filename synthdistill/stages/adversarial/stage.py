"""adversarial: find where the student fails and have the teacher write more of that (the Lion loop).

Lion (Jiang et al., 2023) distils in rounds of imitation, discrimination and generation. Each round
here runs its steps in `NN-adversarial/round-k/`, each skipped or resumed by fingerprint like the
pipeline's own stages (runs.steps.Steps.nested):

1. imitate (imitate.py): the student as trained so far answers a seeded sample (`probe`) of the pool;
2. discriminate (discriminate.py): an item is hard when the student's answer is wrong against its gold
   answer, or, without gold, when the referee scores the teacher's answer at least `gap` above the
   student's, in both orders;
3. grow (grow.py): the teacher writes new instructions modelled on hard ones (and a share on easy ones);
   what is unparsable, degenerate, or not novel against the pool and the test split is dropped with the
   reason;
4. check: the new instructions pass the `check` critics (an arithmetic expression that must evaluate and
   use the problem's numbers, a length, ...);
5. answer, self_consistency, filter: the teacher answers them with rationales, as the generate,
   self_consistency and filter stages do;
6. train: the student is fine-tuned again, from its base, on the grown pool (Lion retrains on its whole
   cache pool each round);
7. evaluate: the new student's accuracy on the test split.

Rounds repeat `rounds` times, or stop when the hard share stops falling. Raising `rounds` later continues
from the last finished round: the rounds' fingerprints leave `rounds` out. The stage hands on the grown
pool, and the last round's student becomes the run's student.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from synthdistill.errors import StageError
from synthdistill.records import Record, stable_hash
from synthdistill.registry import registry
from synthdistill.runs.context import StageContext
from synthdistill.runs.folder import StageManifest, read_records
from synthdistill.runs.steps import Stage, Steps
from synthdistill.stages.adversarial.discriminate import (
    DISCRIMINATE,
    HARD,
    DiscriminateConfig,
    DiscriminateOptions,
)
from synthdistill.stages.adversarial.grow import GROW, GrowConfig, GrowOptions
from synthdistill.stages.adversarial.imitate import IMITATE, ImitateConfig
from synthdistill.stages.evaluate.stage import EvaluateConfig
from synthdistill.stages.filter import FilterConfig, critic_files, critic_templates
from synthdistill.stages.generate import GenerateConfig
from synthdistill.stages.self_consistency import SelfConsistencyConfig
from synthdistill.stages.train.stage import TrainConfig


class AdversarialConfig(GrowOptions, DiscriminateOptions):
    """Options of the adversarial stage (with those of its discriminate and grow steps)."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(2, ge=1, le=100, description="Rounds of imitate, discriminate, grow and train.")
    stop_when_flat: bool = Field(
        True, description="Whether to stop early once a round's hard share is no lower than the last one's."
    )
    probe: int | None = Field(
        100, ge=1, description="Pool items the student answers each round (a seeded sample); None is all."
    )
    student_template: str | None = Field(
        None, description="The student's prompt; None uses the train template, as evaluate does."
    )
    student_max_tokens: int = Field(192, ge=1, description="Most new tokens of a student answer.")
    check: FilterConfig | None = Field(
        None, description="Critics every new instruction must pass before it is answered ({critics: [...]})."
    )
    answer: GenerateConfig = Field(
        default_factory=GenerateConfig, description="How the teacher answers new instructions (generate)."
    )

    @field_validator("answer")
    @classmethod
    def _answered_by_the_teacher(cls, value: GenerateConfig) -> GenerateConfig:
        # New instructions have no recorded completions: every one of them would be dropped.
        if value.recorded is not None:
            raise ValueError("new instructions are answered by the teacher; remove answer.recorded")
        return value

    self_consistency: SelfConsistencyConfig | None = Field(
        None, description="Voting over the answers' samples; None keeps the first parsable one."
    )
    filter: FilterConfig | None = Field(None, description="Critics the answered records must pass.")
    train: TrainConfig | None = Field(
        None, description="How the student is retrained; None uses the train stage before this one."
    )
    evaluate: bool = Field(True, description="Whether each round's student is scored on the test split.")


_STEPS = {step.name: step for step in (IMITATE, DISCRIMINATE, GROW)}
"""The round's own steps; the others (generate, filter, train, ...) are the registered stages."""


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Grow the pool round by round; hand on the grown pool and leave the last round's student."""
    config: AdversarialConfig = ctx.config
    pool = [r.model_copy(update={"source_id": None}) for r in records]
    train = _train_config(config, ctx)
    if ctx.artifacts.get("student_model") is None:
        raise StageError(
            "adversarial needs a student to probe: put a train stage before it", stage=ctx.spec.name
        )
    # Rounds chain from what came before and from the stage's options other than how many rounds to run.
    chain = stable_hash(
        ctx.upstream,
        config.model_dump(mode="json", exclude={"rounds", "stop_when_flat"}),
        train.model_dump(mode="json"),
        {name: ctx.templates.hash(name) for name in _templates(config)},
    )
    rounds: list[dict[str, Any]] = []
    grown_files: list[Path] = []
    ran = False
    for k in range(1, config.rounds + 1):
        sub = Steps.nested(ctx, ctx.folder / f"round-{k}", stable_hash(chain, k), ran=ran)
        stats, kept_path = _round(k, sub, [*pool, *_kept(grown_files)], config, train, ctx)
        ran = sub.ran
        rounds.append(stats)
        ctx.details["rounds"] = rounds
        ctx.log.info("round %d: %s", k, stats)
        if kept_path is not None:
            grown_files.append(kept_path)
        if stats.get("stopped"):
            break
    ctx.details["pool"] = len(pool) + sum(r.get("added", 0) for r in rounds)
    yield from pool
    yield from _kept(grown_files)


def _round(
    k: int,
    sub: Steps,
    pool: list[Record],
    config: AdversarialConfig,
    train: TrainConfig,
    ctx: StageContext,
) -> tuple[dict[str, Any], Path | None]:
    """One round as a sub-run; its counts for the manifest and the file of the records it added."""
    student = Path(ctx.artifacts["student_model"])
    template = config.student_template or train.template
    imitate = sub.step(
        _stage("imitate"),
        ImitateConfig(
            template=template,
            max_tokens=config.student_max_tokens,
            model=str(student),
            probe=config.probe,
            round=k,
        ),
        lambda: pool,
    )
    probed = _read(sub, imitate)
    judged = sub.step(_stage("discriminate"), _part(DiscriminateConfig, config), probed)
    verdicts = [r.verdicts[HARD] for r in _read(sub, judged)() if HARD in r.verdicts]
    hard = sum(not v.passed for v in verdicts)
    stats: dict[str, Any] = {
        "round": k,
        "student": str(student),
        "pool": len(pool),
        "probed": len(verdicts),
        "hard": hard,
        "hard_share": round(hard / len(verdicts), 4) if verdicts else 0.0,
    }
    previous = ctx.details.get("rounds", [])
    if config.stop_when_flat and previous and stats["hard_share"] >= previous[-1]["hard_share"]:
        stats["stopped"] = "the hard share did not fall"
        return stats, None
    if not verdicts:
        stats["stopped"] = "no item was probed"
        return stats, None
    made = sub.step(_stage("grow"), _part(GrowConfig, config, round=k), _read(sub, judged))
    steps = [made]
    if config.check is not None:
        steps.append(sub.step(_stage("filter"), config.check, _read(sub, steps[-1], kept_only=True)))
    steps.append(sub.step(_stage("generate"), config.answer, _read(sub, steps[-1], kept_only=True)))
    if config.self_consistency is not None:
        steps.append(
            sub.step(
                _stage("self_consistency"),
                config.self_consistency,
                _read(sub, steps[-1], kept_only=True),
            )
        )
    if config.filter is not None:
        steps.append(sub.step(_stage("filter"), config.filter, _read(sub, steps[-1], kept_only=True)))
    added_path = sub.records_file(steps[-1].folder)
    added = list(read_records(added_path, kept_only=True))
    stats.update(_growth_counts(sub, steps, made))
    stats["added"] = len(added)
    stats["seeds_of_added"] = len({(r.input.get("seed") or {}).get("id") for r in added})
    if not added:
        # The same pool would train the same student again.
        stats["note"] = "nothing new passed the filters; the student stays as it was"
        return stats, added_path
    sub.step(_stage("train"), train, lambda: [*pool, *added])
    ctx.release_local_models()
    stats["student"] = str(ctx.artifacts["student_model"])
    if config.evaluate and ctx.test_records:
        sub.step(
            _stage("evaluate"),
            EvaluateConfig(template=template, max_tokens=config.student_max_tokens, base=False, plot=False),
            lambda: [],
        )
        metrics = ctx.metrics.get("student", {})
        stats["accuracy"] = metrics.get("accuracy")
        stats["accuracy_ci"] = metrics.get("ci")
        ctx.release_local_models()
    return stats, added_path


def _growth_counts(sub: Steps, steps: list[StageManifest], made: StageManifest) -> dict[str, Any]:
    """New instructions asked, kept and dropped (by whom and why) over the round's growth steps."""
    dropped: Counter[str] = Counter()
    for entry in steps:
        for record in read_records(sub.records_file(entry.folder)):
            if not record.kept:
                dropped[_why(record)] += 1
    return {
        "new": made.details.get("asked", 0),
        "new_hard": made.details.get("asked_hard", 0),
        "new_easy": made.details.get("asked_easy", 0),
        "dropped": dict(sorted(dropped.items())),
    }


def _why(record: Record) -> str:
    """A dropped record's cause as a short key: the stage or critic, and for grow the kind of reason."""
    by = record.dropped_by or "unknown"
    verdict = record.verdicts.get(by)
    if by == "grow" and verdict is not None:
        return f"grow: {verdict.reason.split(':')[0]}"
    return by


def _read(sub: Steps, entry: StageManifest, kept_only: bool = False) -> Callable[[], Iterator[Record]]:
    path = sub.records_file(entry.folder)
    return lambda: read_records(path, kept_only=kept_only)


def _stage(name: str) -> Stage:
    """A stage or step by name, from the registry (the steps of a round are registered like stages)."""
    return _STEPS.get(name) or registry("stage").get(name)


def _part(kind: type[Any], config: AdversarialConfig, **extra: Any) -> Any:
    """A step's config: the stage's options that the step's config declares, and `extra`."""
    return kind.model_validate({**config.model_dump(include=set(kind.model_fields) - set(extra)), **extra})


def _kept(paths: list[Path]) -> list[Record]:
    return [r for path in paths for r in read_records(path, kept_only=True)]


def _train_config(config: AdversarialConfig, ctx: StageContext) -> TrainConfig:
    if config.train is not None:
        return config.train
    # check_pipeline makes sure that a train stage comes before this one.
    found = [s for s in ctx.pipeline.stages if s.name == "train" and s.index < ctx.spec.index][-1].config
    assert isinstance(found, TrainConfig)
    return found


def _templates(config: AdversarialConfig) -> list[str]:
    names = [config.referee_template, config.hard_template, config.easy_template, config.answer.template]
    if config.student_template:
        names.append(config.student_template)
    for critics in (config.check, config.filter):
        if critics is not None:
            names += critic_templates(critics)
    if config.self_consistency is not None:
        names += _stage("self_consistency").inputs(config.self_consistency)
    if config.train is not None:
        names.append(config.train.template)
    return names


STAGE = Stage(
    name="adversarial",
    config=AdversarialConfig,
    run=run,
    summary="Lion rounds: find what the student gets wrong, write more like it, retrain.",
    inputs=_templates,
    batch_input=True,
    needs_student=True,
    uses=("teacher", "student"),
    variables=lambda config: {"record", "answer_text", "answer_1", "answer_2"},
    adds=lambda config: {"question", "seed", "expression"},
    needs_outputs=lambda config: True,
    files=lambda config, base_dir, run_dir: [
        path
        for critics in (config.check, config.filter)
        if critics is not None
        for path in critic_files(critics, base_dir, run_dir)
    ],
)
