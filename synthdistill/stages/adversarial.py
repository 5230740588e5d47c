"""adversarial: find where the student fails and have the teacher write more of that (the Lion loop).

Lion (Jiang et al., 2023) distils in rounds of imitation, discrimination and generation. Each round
here is a sub-run in `NN-adversarial/round-k/`, its steps skipped or resumed by fingerprint like the
pipeline's own stages (pipeline.SubRun):

1. imitate: the student as trained so far answers a seeded sample (`probe`) of the pool;
2. discriminate: an item is hard when the student's answer is wrong against its gold answer, or, without
   gold, when the referee (the teacher, or `referee`) scores the teacher's answer at least `gap` above the
   student's on a 1-10 scale, averaged over both orders so that a referee's position bias cancels;
3. grow: the teacher writes new instructions modelled on hard ones (and a share `easy_share` on easy
   ones, so the student does not forget them); each records its seed (growth.grown), and what is
   unparsable, degenerate, or not novel against the pool and the test split (ROUGE-L, embeddings) is
   dropped with the reason;
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

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.config import TeacherConfig
from synthdistill.context import StageContext
from synthdistill.errors import StageError
from synthdistill.growth import Novelty, degenerate_reason, grown, parse_instruction
from synthdistill.parsing import answers_match, extract_answer
from synthdistill.records import Provenance, Record, Verdict, stable_hash
from synthdistill.runfolder import StageManifest, read_records
from synthdistill.stages import Stage, chunks
from synthdistill.stages import evaluate as evaluate_stage
from synthdistill.stages import filter as filter_stage
from synthdistill.stages import generate as generate_stage
from synthdistill.stages import self_consistency as self_consistency_stage
from synthdistill.stages import train as train_stage
from synthdistill.stages.filter import FilterConfig
from synthdistill.stages.generate import GenerateConfig
from synthdistill.stages.self_consistency import SelfConsistencyConfig
from synthdistill.stages.train import TrainConfig
from synthdistill.student import prompt_messages, response_text
from synthdistill.teachers.base import Request

if TYPE_CHECKING:
    from synthdistill.pipeline import SubRun

HARD = "discriminate"
"""Verdict name of the discrimination: passed means easy, failed means hard."""


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


class AdversarialConfig(BaseModel):
    """Options of the adversarial stage."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(2, ge=1, le=100, description="Rounds of imitate, discriminate, grow and train.")
    stop_when_flat: bool = Field(
        True, description="Whether to stop early once a round's hard share is no lower than the last one's."
    )
    probe: int | None = Field(
        100, ge=1, description="Pool items the student answers each round (a seeded sample); None is all."
    )
    per_round: int = Field(50, ge=1, description="New instructions asked of the teacher each round.")
    easy_share: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of them modelled on easy items, so the student keeps those."
    )
    seeds_from: Literal["hard", "random"] = Field(
        "hard",
        description="What new instructions are modelled on: hard and easy items as discriminated (Lion), or "
        "probed items drawn at random whatever the student did (the control at equal budget).",
    )
    student_template: str | None = Field(
        None, description="The student's prompt; None uses the train template, as evaluate does."
    )
    student_max_tokens: int = Field(192, ge=1, description="Most new tokens of a student answer.")
    use_gold: bool = Field(
        True, description="Whether an item with a gold answer is hard by the student's answer alone."
    )
    referee: TeacherConfig | None = Field(
        None, description="Who scores teacher against student on items without gold; None is the teacher."
    )
    referee_template: str = Field(
        "lion_referee.j2", description="Referee prompt; variables question, answer_1, answer_2."
    )
    referee_max_tokens: int = Field(24, ge=1, description="Most tokens of a referee reply (two scores).")
    gap: float = Field(
        1.0, gt=0.0, description="Teacher minus student score (1-10, both orders averaged) that marks hard."
    )
    hard_template: str = Field("lion_hard.j2", description="Prompt for a new instruction like a hard one.")
    easy_template: str = Field("lion_easy.j2", description="Prompt for a new instruction like an easy one.")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="Sampling temperature of new instructions.")
    max_tokens: int = Field(160, ge=1, description="Most tokens of a new instruction.")
    parse_retries: int = Field(1, ge=0, le=10, description="New samples asked when one cannot be read.")
    novelty: NoveltyConfig = Field(default_factory=NoveltyConfig, description="The diversity filter.")
    check: FilterConfig | None = Field(
        None, description="Critics every new instruction must pass before it is answered ({critics: [...]})."
    )
    answer: GenerateConfig = Field(
        default_factory=GenerateConfig, description="How the teacher answers new instructions (generate)."
    )
    self_consistency: SelfConsistencyConfig | None = Field(
        None, description="Voting over the answers' samples; None keeps the first parsable one."
    )
    filter: FilterConfig | None = Field(None, description="Critics the answered records must pass.")
    train: TrainConfig | None = Field(
        None, description="How the student is retrained; None uses the train stage before this one."
    )
    evaluate: bool = Field(True, description="Whether each round's student is scored on the test split.")


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Grow the pool round by round; hand on the grown pool and leave the last round's student."""
    from synthdistill.pipeline import SubRun

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
        sub = SubRun(ctx, ctx.folder / f"round-{k}", stable_hash(chain, k), ran=ran)
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


def parse_scores(text: str) -> tuple[float, float] | None:
    """The two scores (answer 1, answer 2) of a referee's reply ("8 6", "Assistant 1: 8\\nAssistant 2: 6")."""
    # "Assistant 1" and "Assistant 2" name the answers; their numbers are not scores.
    text = re.sub(r"(?i)(assistant|answer)\s*[12]\b", " ", text)
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    scores = [n for n in numbers if 0 <= n <= 10]
    return (scores[0], scores[1]) if len(scores) >= 2 else None


def _round(
    k: int,
    sub: SubRun,
    pool: list[Record],
    config: AdversarialConfig,
    train: TrainConfig,
    ctx: StageContext,
) -> tuple[dict[str, Any], Path | None]:
    """One round as a sub-run; its counts for the manifest and the file of the records it added."""
    student = Path(ctx.artifacts["student_model"])
    template = config.student_template or train.template
    imitate = sub.step(
        IMITATE,
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
    judged = sub.step(
        DISCRIMINATE,
        DiscriminateConfig(
            use_gold=config.use_gold,
            referee=config.referee,
            template=config.referee_template,
            max_tokens=config.referee_max_tokens,
            gap=config.gap,
        ),
        probed,
    )
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
    grow_config = GrowConfig(
        round=k,
        per_round=config.per_round,
        easy_share=config.easy_share,
        seeds_from=config.seeds_from,
        hard_template=config.hard_template,
        easy_template=config.easy_template,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        parse_retries=config.parse_retries,
        novelty=config.novelty,
    )
    made = sub.step(GROW, grow_config, _read(sub, judged))
    steps = [made]
    if config.check is not None:
        steps.append(sub.step(filter_stage.STAGE, config.check, _read(sub, steps[-1], kept_only=True)))
    steps.append(sub.step(generate_stage.STAGE, config.answer, _read(sub, steps[-1], kept_only=True)))
    if config.self_consistency is not None:
        steps.append(
            sub.step(
                self_consistency_stage.STAGE,
                config.self_consistency,
                _read(sub, steps[-1], kept_only=True),
            )
        )
    if config.filter is not None:
        steps.append(sub.step(filter_stage.STAGE, config.filter, _read(sub, steps[-1], kept_only=True)))
    added_path = sub.records_path(steps[-1])
    added = list(read_records(added_path, kept_only=True))
    stats.update(_growth_counts(sub, steps, made))
    stats["added"] = len(added)
    stats["seeds_of_added"] = len({(r.input.get("seed") or {}).get("id") for r in added})
    if not added:
        # The same pool would train the same student again.
        stats["note"] = "nothing new passed the filters; the student stays as it was"
        return stats, added_path
    sub.step(train_stage.STAGE, train, lambda: [*pool, *added])
    ctx.release_local_models()
    stats["student"] = str(ctx.artifacts["student_model"])
    if config.evaluate and ctx.test_records:
        sub.step(
            evaluate_stage.STAGE,
            evaluate_stage.EvaluateConfig(
                template=template, max_tokens=config.student_max_tokens, base=False, plot=False
            ),
            lambda: [],
        )
        metrics = ctx.metrics.get("student", {})
        stats["accuracy"] = metrics.get("accuracy")
        stats["accuracy_ci"] = metrics.get("ci")
        ctx.release_local_models()
    return stats, added_path


def _growth_counts(sub: SubRun, steps: list[StageManifest], made: StageManifest) -> dict[str, Any]:
    """New instructions asked, kept and dropped (by whom and why) over the round's growth steps."""
    dropped: Counter[str] = Counter()
    for entry in steps:
        for record in read_records(sub.records_path(entry)):
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


def _read(sub: SubRun, entry: StageManifest, kept_only: bool = False) -> Callable[[], Iterator[Record]]:
    path = sub.records_path(entry)
    return lambda: read_records(path, kept_only=kept_only)


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
            names += filter_stage.critic_templates(critics)
    if config.self_consistency is not None:
        names += self_consistency_stage.STAGE.inputs(config.self_consistency)
    if config.train is not None:
        names.append(config.train.template)
    return names


# --- imitate -------------------------------------------------------------------------------------------


class ImitateConfig(BaseModel):
    """The imitation step: which student answers which items."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(description="The student's prompt template.")
    max_tokens: int = Field(description="Most new tokens of an answer (greedy).")
    model: str = Field(description="The student's folder.")
    probe: int | None = Field(description="Items answered (a seeded sample); None is all.")
    round: int = Field(description="The round, which seeds the sample.")


def _imitate(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """The pool, with the student's greedy answer as the only sample of each probed item."""
    from synthdistill.modelcard import task_cue

    config: ImitateConfig = ctx.config
    pool = list(records)
    chosen = _probe(pool, config.probe, ctx.seed, config.round)
    cue = task_cue(Path(config.model))
    local = TeacherConfig(model=config.model, backend="transformers", batch_size=32)
    engine = ctx.engine(local)
    provenance = Provenance(
        stage="imitate", teacher="transformers", model=config.model, template=config.template
    )
    requests = (
        (
            record,
            Request(
                messages=prompt_messages(ctx.templates, config.template, record, cue),
                max_tokens=config.max_tokens,
            ),
        )
        for record in pool
        if record.id in chosen
    )
    answers = {record.id: samples for record, samples in engine.map(requests)}
    for record in pool:
        # In the round's files a record's samples are the student's answer (none when not probed); the
        # teacher's chosen rationale and answer stay on the record.
        samples = answers.get(record.id, [])
        update: dict[str, Any] = {"samples": samples}
        if samples:
            update["provenance"] = [*record.provenance, provenance]
        yield record.model_copy(update=update)
    ctx.details["probed"] = len(answers)


def _probe(pool: list[Record], size: int | None, seed: int, round: int) -> set[str]:
    # One record per question: a pool kept with several rationales per problem asks each problem once.
    first: dict[str, str] = {}
    for record in pool:
        first.setdefault(str(record.input.get("question", record.id)), record.id)
    ids = list(first.values())
    if size is None or size >= len(ids):
        return set(ids)
    return set(random.Random(stable_hash(seed, round)).sample(ids, size))


IMITATE = Stage(
    name="imitate",
    config=ImitateConfig,
    run=_imitate,
    summary="The student answers a sample of the pool.",
    inputs=lambda config: [config.template],
    batch_input=True,
)


# --- discriminate --------------------------------------------------------------------------------------


class DiscriminateConfig(BaseModel):
    """The discrimination step: gold answers, or a referee's scores in both orders."""

    model_config = ConfigDict(extra="forbid")

    use_gold: bool = Field(description="Whether gold answers decide where there are some.")
    referee: TeacherConfig | None = Field(description="The referee; None is the teacher.")
    template: str = Field(description="Referee prompt.")
    max_tokens: int = Field(description="Most tokens of a referee reply.")
    gap: float = Field(description="Teacher minus student score that marks an item hard.")


def _discriminate(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Each probed record with a `discriminate` verdict: failed (hard) or passed (easy)."""
    config: DiscriminateConfig = ctx.config
    referee = ctx.engine(config.referee)

    def requests(batch: list[Record]) -> Iterator[tuple[tuple[int, int], Request]]:
        for i, record in enumerate(batch):
            if not _needs_referee(record, config):
                continue
            teacher, student = response_text(record), record.samples[0].text.strip()
            # Order 0 puts the teacher's answer first, order 1 the student's.
            for order, (one, two) in enumerate(((teacher, student), (student, teacher))):
                variables = {"question": record.input.get("question", ""), "answer_1": one, "answer_2": two}
                messages = ctx.templates.render_messages(config.template, variables)
                yield (i, order), Request(messages=messages, max_tokens=config.max_tokens, temperature=0.0)

    counts: Counter[str] = Counter()
    for batch in chunks(records, 256):
        replies: dict[tuple[int, int], str] = {}
        for key, samples in referee.map(requests(batch)):
            replies[key] = samples[0].text if samples else ""
        for i, record in enumerate(batch):
            if not record.samples:
                yield record
                continue
            if _needs_referee(record, config):
                verdict = _refereed(replies.get((i, 0), ""), replies.get((i, 1), ""), config.gap)
                counts["refereed"] += 1
            else:
                verdict = _by_gold(record)
                counts["by_gold"] += 1
            counts["hard" if not verdict.passed else "easy"] += 1
            yield record.model_copy(update={"verdicts": {**record.verdicts, HARD: verdict}})
    ctx.details.update(counts)


def _needs_referee(record: Record, config: DiscriminateConfig) -> bool:
    return bool(record.samples) and not (config.use_gold and record.gold is not None)


def _by_gold(record: Record) -> Verdict:
    answer = extract_answer(record.samples[0].text)
    right = answers_match(answer, record.gold)
    reason = f"student answered {answer!r}, gold {record.gold!r}"
    return Verdict(score=0.0 if right else 1.0, passed=right, reason=reason)


def _refereed(teacher_first: str, student_first: str, gap: float) -> Verdict:
    """Scores in both orders, averaged per answer: a referee that always prefers one position cancels out."""
    one, two = parse_scores(teacher_first), parse_scores(student_first)
    if one is None or two is None:
        return Verdict(score=None, passed=True, reason="referee reply unreadable; counted easy")
    teacher = (one[0] + two[1]) / 2
    student = (one[1] + two[0]) / 2
    difference = teacher - student
    reason = f"teacher {teacher:g}, student {student:g} (gap {difference:g}, hard at {gap:g})"
    return Verdict(score=round(difference, 4), passed=difference < gap, reason=reason)


DISCRIMINATE = Stage(
    name="discriminate",
    config=DiscriminateConfig,
    run=_discriminate,
    summary="Mark the items where the student falls short of the teacher.",
    inputs=lambda config: [config.template],
    uses=("teacher",),
)


# --- grow ----------------------------------------------------------------------------------------------


class GrowConfig(BaseModel):
    """The generation step: new instructions from hard and easy seeds."""

    model_config = ConfigDict(extra="forbid")

    round: int = Field(description="The round, recorded in each new instruction's lineage.")
    per_round: int = Field(description="New instructions asked.")
    easy_share: float = Field(description="Share modelled on easy items.")
    seeds_from: Literal["hard", "random"] = Field(description="Seeds by discrimination, or at random.")
    hard_template: str = Field(description="Prompt for a hard seed.")
    easy_template: str = Field(description="Prompt for an easy seed.")
    temperature: float = Field(description="Sampling temperature.")
    max_tokens: int = Field(description="Most tokens of a new instruction.")
    parse_retries: int = Field(description="New samples asked for an unreadable one.")
    novelty: NoveltyConfig = Field(description="The diversity filter.")


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
    teacher = ctx.pipeline.config.teacher
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
        provenance = Provenance(
            stage="grow",
            teacher=teacher.backend,
            model=teacher.model,
            template=template,
            template_hash=ctx.templates.hash(template),
            params={"temperature": config.temperature, "max_tokens": config.max_tokens},
        )
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


STAGE = Stage(
    name="adversarial",
    config=AdversarialConfig,
    run=run,
    summary="Lion rounds: find what the student gets wrong, write more like it, retrain.",
    inputs=_templates,
    batch_input=True,
    needs_student=True,
    uses=("teacher", "student"),
    files=lambda config, base_dir, run_dir: [
        path
        for critics in (config.check, config.filter)
        if critics is not None
        for path in filter_stage.critic_files(critics, base_dir, run_dir)
    ],
)
