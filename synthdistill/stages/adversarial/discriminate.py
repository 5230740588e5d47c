"""discriminate, a step of the adversarial rounds: mark the items where the student falls short.

An item is hard when the student's answer is wrong against its gold answer (read and judged by the
task's scorer, as evaluate and the answer_match critic judge it), or, without gold, when the referee
(the teacher, or `referee`) scores the teacher's answer at least `gap` above the student's on a 1-10
scale, averaged over both orders so that a referee's position bias cancels.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.config import MaxTokens, TeacherConfig
from synthdistill.records import Record, Verdict, chunks
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.scoring.scorer import Scorer
from synthdistill.student.prompts import response_text
from synthdistill.teachers.base import Request

HARD = "discriminate"
"""Verdict name of the discrimination: passed means easy, failed means hard."""


class DiscriminateOptions(BaseModel):
    """How items are judged hard or easy (options of the adversarial stage, and its discriminate step)."""

    model_config = ConfigDict(extra="forbid")

    use_gold: bool = Field(
        True, description="Whether an item with a gold answer is hard by the student's answer alone."
    )
    referee: TeacherConfig | None = Field(
        None, description="Who scores teacher against student on items without gold; None is the teacher."
    )
    referee_template: str = Field(
        "lion_referee.j2", description="Referee prompt; variables question, answer_1, answer_2."
    )
    # Two scores.
    referee_max_tokens: MaxTokens = 24
    gap: float = Field(
        1.0, gt=0.0, description="Teacher minus student score (1-10, both orders averaged) that marks hard."
    )


class DiscriminateConfig(DiscriminateOptions):
    """The discrimination step: the adversarial stage's `DiscriminateOptions` as they are."""


def _discriminate(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Each probed record with a `discriminate` verdict: failed (hard) or passed (easy)."""
    config: DiscriminateConfig = ctx.config
    referee = ctx.engine(config.referee)
    scorer = Scorer(ctx.pipeline.config.data.task)

    def requests(batch: list[Record]) -> Iterator[tuple[tuple[int, int], Request]]:
        for i, record in enumerate(batch):
            if not _needs_referee(record, config):
                continue
            teacher, student = response_text(record), record.samples[0].text.strip()
            # Order 0 puts the teacher's answer first, order 1 the student's.
            for order, (one, two) in enumerate(((teacher, student), (student, teacher))):
                variables = {"question": record.input.get("question", ""), "answer_1": one, "answer_2": two}
                messages = ctx.templates.render_messages(config.referee_template, variables)
                yield (
                    (i, order),
                    Request(messages=messages, max_tokens=config.referee_max_tokens, temperature=0.0),
                )

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
                verdict = _by_gold(record, scorer)
                counts["by_gold"] += 1
            counts["hard" if not verdict.passed else "easy"] += 1
            yield record.model_copy(update={"verdicts": {**record.verdicts, HARD: verdict}})
    ctx.details.update(counts)


def _needs_referee(record: Record, config: DiscriminateConfig) -> bool:
    return bool(record.samples) and not (config.use_gold and record.gold is not None)


def _by_gold(record: Record, scorer: Scorer) -> Verdict:
    answer = scorer.read(record.samples[0].text, record)
    right = scorer.judge(answer, record).passed
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
    inputs=lambda config: [config.referee_template],
    uses=("teacher",),
)


def parse_scores(text: str) -> tuple[float, float] | None:
    """The two scores (answer 1, answer 2) of a referee's reply ("8 6", "Assistant 1: 8\\nAssistant 2: 6")."""
    # "Assistant 1" and "Assistant 2" name the answers; their numbers are not scores.
    text = re.sub(r"(?i)(assistant|answer)\s*[12]\b", " ", text)
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    scores = [n for n in numbers if 0 <= n <= 10]
    return (scores[0], scores[1]) if len(scores) >= 2 else None
