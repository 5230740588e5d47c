"""program_executes: a record's program runs in the sandbox and prints its answer, and the gold one.

A program-of-thought record (generate's `parse: program`) holds its program as a fenced ```python block
in its rationale. This critic runs it again, side by side with the batch's other programs, in the
sandbox (synthdistill/sandbox/), and passes the record when the program runs to the end, the last line
it prints equals the record's answer, and, where the item has a gold answer, equals that too: so a
kept record's answer is one that its own program computes. Answers are compared as the task's scoring
reads them (scoring/scorer.py), as answer_match does. A failed verdict says why: the sandbox's reason
(what the program raised, what it reached for, which limit stopped it), or the two answers that differ.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.errors import CriticError
from synthdistill.parsing import program_of
from synthdistill.records import Record, Verdict
from synthdistill.sandbox import Limits, Result, run_programs
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig


class ProgramExecutes(BaseCritic):
    """Passes a record whose program prints its answer (and the gold answer, where there is one)."""

    name = "program_executes"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field("rationale", description="Field holding the program, as a ```python block.")
        answer_field: str = Field("answer", description="Field holding the answer the record states.")
        gold_field: str = Field("input.answer", description="Field holding the gold answer, where known.")
        missing_program: bool = Field(
            False,
            description="Whether a record without a program passes (a chain-of-thought record beside the "
            "programs of a mixed set).",
        )
        sandbox: Limits = Field(default_factory=Limits, description="Limits of the sandbox.")
        workers: int | None = Field(
            None, ge=1, le=64, description="Programs run side by side; None runs one a CPU."
        )

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Run each record's program and compare what it prints with the record's and the gold answer."""
        task = self.ctx.pipeline.config.data.task if self.ctx is not None else TaskConfig()
        scorer = Scorer(task)
        programs = [program_of(_text(record, self.options.field)) for record in records]
        runnable = [i for i, program in enumerate(programs) if program is not None]
        ran = run_programs([programs[i] or "" for i in runnable], self.options.sandbox, self.options.workers)
        results: dict[int, Result] = dict(zip(runnable, ran, strict=True))
        return [self._judge(record, results.get(i), scorer) for i, record in enumerate(records)]

    def _judge(self, record: Record, result: Result | None, scorer: Scorer) -> Verdict:
        if result is None:
            where = self.options.field
            return Verdict(passed=self.options.missing_program, reason=f"no ```python block in {where}")
        if not result.ok:
            return Verdict(passed=False, reason=f"program failed: {result.reason}")
        printed = result.answer
        stated = _text(record, self.options.answer_field)
        if not stated:
            return Verdict(passed=False, reason=f"the program prints {printed}, and the record states none")
        if not scorer.same(printed, stated, record):
            return Verdict(
                passed=False, reason=f"the program prints {printed}, but the record's answer is {stated}"
            )
        gold = _text(record, self.options.gold_field)
        if gold and not scorer.same(printed, gold, record):
            return Verdict(
                passed=False, reason=f"the program prints {printed}, but the gold answer is {gold}"
            )
        also = " as the gold answer" if gold else " (no gold answer to check)"
        return Verdict(score=1.0, passed=True, reason=f"the program prints {printed}{also}")


def _text(record: Record, field: str) -> str:
    # A record without the field (no gold answer, no rationale) is judged, not an error.
    try:
        return field_text(record, field).strip()
    except CriticError:
        return ""
