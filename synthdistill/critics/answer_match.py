"""answer_match: the record's answer equals its gold answer, after normalisation.

Numbers match within a relative tolerance once commas, currency, units and trailing zeros are gone
("1,000" = "1000", "$5" = "5.00", "7 apples" = "7"); text matches ignoring case and final punctuation;
a multiple-choice item (a `choices` list or {letter: text} mapping in its input) matches by letter or
by the choice's text ("B", "(b)", "Paris" are one answer when B is Paris).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.parsing import answers_match, choice_letter
from synthdistill.records import Record, Verdict


class AnswerMatch(BaseCritic):
    """Passes a record whose answer matches the gold answer."""

    name = "answer_match"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        tolerance: float = Field(1e-6, ge=0.0, description="Relative tolerance for numeric answers.")
        missing_gold: bool = Field(False, description="Whether a record without a gold answer passes.")
        field: str = Field("answer", description="Field holding the predicted answer (see field_text).")
        gold_field: str = Field("input.answer", description="Field holding the gold answer.")
        choices_field: str = Field(
            "choices",
            description="Input key of a multiple-choice item's options (a list, lettered A, B, ..., or a "
            "{letter: text} mapping); items without it are compared as free answers.",
        )

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Compare each record's answer with its gold answer."""
        return [self._judge(record) for record in records]

    def _judge(self, record: Record) -> Verdict:
        gold = _optional_text(record, self.options.gold_field)
        if gold is None:
            return Verdict(passed=self.options.missing_gold, reason="no gold answer")
        predicted = _optional_text(record, self.options.field)
        choices = record.input.get(self.options.choices_field)
        if isinstance(choices, list | dict) and choices:
            got, want = choice_letter(predicted or "", choices), choice_letter(gold, choices)
            ok = got is not None and got == want
            reason = "matches gold" if ok else f"choice {got or predicted!r} != gold {want or gold!r}"
        else:
            ok = answers_match(predicted, gold, self.options.tolerance)
            reason = "matches gold" if ok else f"answer {predicted!r} != gold {gold!r}"
        return Verdict(score=1.0 if ok else 0.0, passed=ok, reason=reason)


def _optional_text(record: Record, field: str) -> str | None:
    # A missing or empty answer is "no answer", not an error: the critic fails the record.
    if field == "answer":
        return record.answer
    if field.startswith("input.") and field.removeprefix("input.") not in record.input:
        return None
    text = field_text(record, field)
    return text or None
