"""pairs: preference pairs, chosen over rejected, from what the pipeline already has (for the dpo stage).

By `method`, for each question of the records it reads:
- teacher_over_student (PLaD): the teacher's kept answer is chosen and the current student's greedy
  answer rejected (the run's trained student, answering through the engine on its own prompt); a student
  that already reaches the gold answer gives no pair unless `skip_correct` is off;
- correct_over_incorrect: among the question's answers (generate's samples, or the rationales
  self_consistency hands on with `keep: all`), one reaching the gold answer over one that does not;
- judge: the llm_judge critic in pairwise mode compares two answers (two of the teacher's, or the
  teacher's and the student's) in both orders; ties and disagreeing orders give no pair.

Every pair is a record (candidates.py): the rejected completion in its input, the chosen one as its
rationale and answer, provenance naming the method and both sides' models and answers, the judge's verdict.
Pairs that cannot be used (a tie, a right student, equal texts) and questions that give no pair are written
dropped, with the reason, like any stage's dropped records; the dataset of a run ending in pairs has
`prompt`, `chosen` and `rejected` columns.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from synthdistill.config import TeacherConfig
from synthdistill.errors import StageError
from synthdistill.records import Provenance, Record, Sample, Verdict
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.scoring.scorer import Scorer
from synthdistill.stages.pairs.candidates import (
    Candidate,
    by_question,
    make_pair,
    same_sides,
    spread,
    student_candidate,
    teacher_candidates,
    unpaired,
)
from synthdistill.stages.pairs.judge import JUDGE, judge, judge_options
from synthdistill.stages.pairs.student import ask_student, student_model

NAME = "pairs"
# Stages that leave a trained student in the run's artifacts for the stages after them.
TRAINERS = ("train", "dpo")


class PairsConfig(BaseModel):
    """Options of the pairs stage."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["teacher_over_student", "correct_over_incorrect", "judge"] = Field(
        description="How a pair is made: the teacher's answer over the student's (PLaD), a right answer over "
        "a wrong one among a question's samples, or the better of two answers as a judge sees them."
    )
    per_question: int = Field(1, ge=1, description="Most pairs made from one question.")
    model: str | None = Field(
        None,
        description="The student that answers (teacher_over_student; judge with candidates: student): an "
        "alias, a folder (a LoRA adapter too) or a hub id; None is the run's trained student.",
    )
    template: str = Field("cot_student.j2", description="The student's prompt template (as train uses it).")
    max_tokens: int = Field(192, ge=1, description="Most new tokens of the student's (greedy) answer.")
    # On by default: a right student answer as the rejected side would teach the student away from it.
    skip_correct: bool = Field(
        True,
        description="Whether teacher_over_student drops a pair whose student answer already reaches the gold "
        "answer.",
    )
    candidates: Literal["samples", "student"] = Field(
        "samples",
        description="What the judge compares: two of a question's teacher answers, or the teacher's answer "
        "and the student's.",
    )
    judge: dict[str, Any] | None = Field(
        None,
        description="For method judge: the llm_judge critic's options (teacher, template, temperature, "
        "max_tokens, parse_retries); {} judges with the pipeline's teacher.",
    )
    records_from: str | None = Field(
        None,
        description="An earlier stage whose kept records the pairs are made from, by name (generate: every "
        "sample of each question, for correct_over_incorrect after a filter); None reads what the stage "
        "before hands on.",
    )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> PairsConfig:
        if self.method == "judge" and self.judge is None:
            raise ValueError(
                "method judge needs `judge`, the llm_judge options ({} judges with the pipeline's teacher, "
                "{teacher: {backend: ..., model: ...}} with another model)"
            )
        if self.method != "judge":
            for key in ("judge", "candidates"):
                if key in self.model_fields_set:
                    raise ValueError(f"`{key}` is read by method judge only; remove it or set method: judge")
        if self.judge is not None:
            judge_options(self.judge)
        before = (info.context or {}).get("stages_before")
        if before is None:
            return self
        if self.asks_student and self.model is None and not set(before) & set(TRAINERS):
            raise ValueError(
                f"method {self.method} needs the student's answers, and no train stage comes before pairs; "
                "put a train stage before it, or name the student in `model:`"
            )
        if self.records_from is not None and self.records_from not in before:
            raise ValueError(
                f"records_from {self.records_from!r} names no stage before pairs "
                f"(before it: {', '.join(before) or 'none'})"
            )
        return self

    @property
    def asks_student(self) -> bool:
        """Whether the student answers."""
        return self.method == "teacher_over_student" or (
            self.method == "judge" and self.candidates == "student"
        )


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Make the pairs of each question, in order; questions that give none are handed on dropped."""
    config: PairsConfig = ctx.config
    scorer = Scorer(ctx.pipeline.config.data.task)
    read = list(records)
    if config.records_from is not None:
        read = _records_from(config.records_from, ctx)
    questions = by_question(read)
    answers: dict[str, Sample] = {}
    student: tuple[str, Provenance] | None = None
    if config.asks_student:
        model = student_model(config, ctx)
        if model is None:
            return  # a dry run before training: the student's answers are unknown, and cost nothing
        # Only questions with a teacher answer to pair with are asked (a right one, where there is gold).
        asked = [
            g[0] for g in questions if any(c.correct is not False for c in teacher_candidates(g, scorer))
        ]
        answers, provenance = ask_student(asked, model, config, ctx)
        student = (model, provenance)
    if config.method == "judge":
        made = _judged(questions, config, ctx, scorer, answers, student)
    else:
        made = [_paired(group, config, ctx, scorer, answers, student) for group in questions]
    dropped: Counter[str] = Counter()
    for group in made:
        for record in group:
            if not record.kept:
                # The judge's reasons name each pair's sides: counted as the judge's; the stage's by reason.
                verdict = record.verdicts.get(record.dropped_by or NAME)
                by_reason = verdict is not None and record.dropped_by != JUDGE
                dropped[verdict.reason if by_reason and verdict else str(record.dropped_by)] += 1
            yield record
    ctx.details.update(
        {
            "method": config.method,
            "questions": len(questions),
            "pairs": sum(record.kept for group in made for record in group),
            "dropped": dict(dropped.most_common()),
        }
    )
    if student is not None:
        ctx.details["student"] = student[0]


def _paired(
    group: list[Record],
    config: PairsConfig,
    ctx: StageContext,
    scorer: Scorer,
    answers: dict[str, Sample],
    student: tuple[str, Provenance] | None,
) -> list[Record]:
    """One question's pairs by teacher_over_student or correct_over_incorrect."""
    source = group[0].source_id or group[0].id
    teachers = teacher_candidates(group, scorer)
    if config.method == "correct_over_incorrect":
        if group[0].gold is None:
            return [unpaired(group, NAME, "no gold answer to tell a right answer from a wrong one")]
        right = [c for c in teachers if c.correct]
        wrong = [c for c in teachers if c.correct is False]
        if not right or not wrong:
            return [unpaired(group, NAME, f"no {'right' if not right else 'wrong'} answer among the samples")]
        provenance = Provenance(stage=ctx.spec.name)
        sides: list[tuple[Candidate, Candidate, list[Sample]]] = [
            (right[i], wrong[j], []) for i, j in spread(len(right), len(wrong), config.per_question)
        ]
    else:
        assert student is not None
        teachers = [c for c in teachers if c.correct is not False]
        answer = answers.get(group[0].id)
        if not teachers:
            return [unpaired(group, NAME, "no teacher answer that reaches the gold answer")]
        if answer is None:
            return [unpaired(group, NAME, "the student gave no answer (its request failed)")]
        rejected = student_candidate(group[0], answer, student[0], scorer)
        provenance = student[1]
        sides = [(chosen, rejected, [answer]) for chosen in teachers[: config.per_question]]
    pairs = []
    for chosen, rejected, samples in sides:
        params = {"method": config.method, "chosen": chosen.side(), "rejected": rejected.side()}
        entry = provenance.model_copy(update={"params": {**provenance.params, **params}})
        pair = make_pair(chosen, rejected, source, entry, samples=samples)
        if rejected.label == "student" and rejected.correct and config.skip_correct:
            pair = pair.drop(NAME, "the student already reaches the gold answer (skip_correct)")
        pairs.append(_checked(pair, f"{chosen.label} over {rejected.label}"))
    return pairs


def _judged(
    questions: list[list[Record]],
    config: PairsConfig,
    ctx: StageContext,
    scorer: Scorer,
    answers: dict[str, Sample],
    student: tuple[str, Provenance] | None,
) -> list[list[Record]]:
    """Every question's pairs by the judge: candidates paired first, then judged together (both orders)."""
    assert config.judge is not None
    planned: list[list[tuple[Candidate, Candidate, list[Sample]]]] = []
    made: list[list[Record]] = []
    for group in questions:
        teachers = teacher_candidates(group, scorer)
        answer = answers.get(group[0].id)
        if student is not None:
            usable = [c for c in teachers if c.correct is not False]
            planned.append([])
            if usable and answer is not None:
                rival = student_candidate(group[0], answer, student[0], scorer)
                planned[-1].append((usable[0], rival, [answer]))
        else:
            combos = sorted(itertools.combinations(range(len(teachers)), 2), key=lambda ij: (sum(ij), ij[0]))
            planned.append([(teachers[i], teachers[j], []) for i, j in combos[: config.per_question]])
        reason = (
            "fewer than two answers to compare"
            if student is None
            else "no teacher or student answer to compare"
        )
        made.append([] if planned[-1] else [unpaired(group, NAME, reason)])
    flat = [(first, second) for sides in planned for first, second, _ in sides]
    verdicts = iter(judge(flat, config.judge, ctx))
    # The judge is the pipeline's teacher, one of its named teachers, or one given in full.
    named = config.judge.get("teacher")
    teacher = TeacherConfig.model_validate(named) if isinstance(named, dict) else named
    template = config.judge.get("template") or "judge_pairwise.j2"
    provenance = ctx.provenance(
        template, {"temperature": config.judge.get("temperature", 0.0)}, teacher=teacher
    )
    for group, sides, out in zip(questions, planned, made, strict=True):
        source = group[0].source_id or group[0].id
        for first, second, samples in sides:
            verdict = next(verdicts)
            chosen, rejected = (second, first) if verdict.score == 0.0 else (first, second)
            params: dict[str, Any] = {"method": "judge", "candidates": config.candidates}
            params |= {"share_of_a": verdict.score, "chosen": chosen.side(), "rejected": rejected.side()}
            entry = provenance.model_copy(update={"params": {**provenance.params, **params}})
            shown = verdict.model_copy(update={"score": 1.0}) if verdict.passed else verdict
            pair = make_pair(chosen, rejected, source, entry, verdicts={JUDGE: shown}, samples=samples)
            out.append(
                _checked(pair if verdict.passed else pair.drop(JUDGE), f"the judge's pick, {chosen.label}")
            )
    return made


def _checked(pair: Record, why: str) -> Record:
    """A pair kept only if its two sides differ; a kept one carries the stage's verdict saying why."""
    if not pair.kept:
        return pair
    if same_sides(pair):
        return pair.drop(NAME, "chosen and rejected are the same text")
    return pair.model_copy(update={"verdicts": {**pair.verdicts, NAME: Verdict(passed=True, reason=why)}})


def _templates(config: PairsConfig) -> list[str]:
    """The templates the stage renders: the student's prompt when the student answers, the judge's."""
    names = [config.template] if config.asks_student else []
    if config.method == "judge":
        names.append((config.judge or {}).get("template") or "judge_pairwise.j2")
    return names


def _records_from(name: str, ctx: StageContext) -> list[Record]:
    """The kept records (review applied) of the last stage called `name` before this one."""
    from synthdistill.runs.decisions import load_decisions, reviewed_records

    earlier = [spec for spec in ctx.pipeline.stages if spec.name == name and spec.index < ctx.spec.index]
    path = ctx.run.run.root / earlier[-1].folder / "records.jsonl" if earlier else None
    if path is None or not path.is_file():
        raise StageError(f"records_from {name!r}: no records of that stage in this run", stage=ctx.spec.name)
    ctx.details["records_from"] = earlier[-1].folder
    return list(reviewed_records(path, load_decisions(ctx.run.run.root)))


STAGE = Stage(
    name=NAME,
    config=PairsConfig,
    run=run,
    summary="Preference pairs: teacher over student (PLaD), right over wrong, or a judge's pick.",
    inputs=lambda config: _templates(config),
    # The judge's template is rendered with the two answers (and the record's fields).
    variables=lambda config: {"record", "first", "second"},
    batch_input=True,
    uses=("teacher", "student"),
    needs_outputs=lambda config: True,
)
