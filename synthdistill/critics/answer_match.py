"""answer_match: the record's answer equals its gold answer, as the task's scoring reads both.

The pipeline's `data.task` (or, undeclared, the record itself) says how (scoring/scorer.py): numbers
within a relative tolerance once commas, currency, units and trailing zeros are gone ("1,000" = "1000",
"$5" = "5.00"); a multiple-choice item (`choices` in its input) by the choice named, by letter, by text
or as "(c) text"; a label by the label or a declared synonym; free text and triple tails after
normalisation. evaluate and self_consistency read answers through the same scorer, so a record this
critic keeps is one evaluate would score right.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.records import Record, Verdict
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig


class AnswerMatch(BaseCritic):
    """Passes a record whose answer matches the gold answer."""

    name = "answer_match"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        tolerance: float | None = Field(
            None, ge=0.0, description="Relative tolerance for numeric answers; None takes data.task's."
        )
        missing_gold: bool = Field(False, description="Whether a record without a gold answer passes.")
        field: str = Field("answer", description="Field holding the predicted answer (see field_text).")
        gold_field: str = Field("input.answer", description="Field holding the gold answer.")
        choices_field: str | None = Field(
            None,
            description="Input key of a multiple-choice item's options (a list, lettered A, B, ..., or a "
            "{letter: text} mapping); None takes data.task's (choices).",
        )

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Compare each record's answer with its gold answer."""
        scorer = Scorer(self._task())
        return [self._judge(record, scorer) for record in records]

    def _task(self) -> TaskConfig:
        """The pipeline's task (a critic built outside a pipeline infers it), with this critic's overrides."""
        task = self.ctx.pipeline.config.data.task if self.ctx is not None else TaskConfig()
        overrides = {
            key: value
            for key, value in (
                ("tolerance", self.options.tolerance),
                ("choices_field", self.options.choices_field),
            )
            if value is not None
        }
        return task.model_copy(update=overrides) if overrides else task

    def _judge(self, record: Record, scorer: Scorer) -> Verdict:
        gold = _optional_text(record, self.options.gold_field)
        if gold is None:
            return Verdict(passed=self.options.missing_gold, reason="no gold answer")
        return scorer.judge(_optional_text(record, self.options.field), record, gold)


def _optional_text(record: Record, field: str) -> str | None:
    # A missing or empty answer is "no answer", not an error: the critic fails the record.
    if field == "answer":
        return record.answer
    if field.startswith("input.") and field.removeprefix("input.") not in record.input:
        return None
    text = field_text(record, field)
    return text or None
