"""teacher_agreement: keep a record whose answer a quorum of the pipeline's teachers gave (CensorChat
kept what a majority of four LLMs agreed on).

A record asked of several named teachers (generate's `teachers: [a, b]`) holds samples that name their
teacher; the teachers counted are those with a parsed sample whose answer is the record's, read through
the task's scorer (so "1,000" and "1000" agree). After self_consistency a child carries the samples
that agree with its answer, so the critic works on generate's records and on self_consistency's alike.
`quorum` is a count of teachers (2) or a share of the pipeline's named teachers (0.5: half of them,
rounded up).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthdistill.critics import BaseCritic
from synthdistill.records import Record, Verdict
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig


class TeacherAgreement(BaseCritic):
    """Passes a record whose answer at least `quorum` teachers gave."""

    name = "teacher_agreement"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        quorum: int | float = Field(
            2,
            description="Teachers that must have given the record's answer: a count (2), or a share of the "
            "pipeline's named teachers (0.5 is half of them, rounded up; 1.0 is all).",
        )

        @field_validator("quorum")
        @classmethod
        def _count_or_share(cls, value: int | float) -> int | float:
            if value <= 0 or (isinstance(value, float) and value > 1):
                raise ValueError(
                    f"{value} is neither a count of teachers (a whole number such as 2) nor a share of "
                    "them (above 0, at most 1.0)"
                )
            return value

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Count, for each record, the teachers whose samples give its answer."""
        task = self.ctx.pipeline.config.data.task if self.ctx is not None else TaskConfig()
        scorer = Scorer(task)
        needed = self._needed()
        return [self._judge(record, scorer, needed) for record in records]

    def _needed(self) -> int:
        quorum = self.options.quorum
        if isinstance(quorum, int):
            return quorum
        teachers = len(self.ctx.pipeline.config.teachers) if self.ctx is not None else 0
        return max(1, math.ceil(quorum * max(teachers, 1)))

    def _judge(self, record: Record, scorer: Scorer, needed: int) -> Verdict:
        if record.answer is None:
            return Verdict(passed=False, reason="no answer to agree on")
        agreeing = sorted(
            {
                s.teacher
                for s in record.samples
                if s.teacher is not None
                and s.error is None
                and s.fields.get("answer") is not None
                and scorer.same(s.fields.get("answer"), record.answer, record)
            }
        )
        passed = len(agreeing) >= needed
        who = ", ".join(agreeing) or "no named teacher"
        return Verdict(
            score=float(len(agreeing)),
            passed=passed,
            reason=f"{len(agreeing)} of {needed} teachers needed gave {record.answer} ({who})",
        )
