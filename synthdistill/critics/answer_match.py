"""answer_match: the record's answer equals its gold answer, after normalisation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic
from synthdistill.parsing import answers_match
from synthdistill.records import Record, Verdict


class AnswerMatch(BaseCritic):
    """Passes a record whose answer matches the gold answer (numbers within a relative tolerance)."""

    name = "answer_match"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        tolerance: float = Field(1e-6, ge=0.0, description="Relative tolerance for numeric answers.")
        missing_gold: bool = Field(False, description="Whether a record without a gold answer passes.")

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Compare each record's answer with its gold answer."""
        verdicts = []
        for record in records:
            if record.gold is None:
                verdicts.append(Verdict(passed=self.options.missing_gold, reason="no gold answer"))
                continue
            ok = answers_match(record.answer, record.gold, self.options.tolerance)
            reason = "matches gold" if ok else f"answer {record.answer!r} != gold {record.gold!r}"
            verdicts.append(Verdict(score=1.0 if ok else 0.0, passed=ok, reason=reason))
        return verdicts
