"""length: bounds on the rationale's length in words."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic
from synthdistill.records import Record, Verdict


class Length(BaseCritic):
    """Passes a record whose rationale has between `min_words` and `max_words` words."""

    name = "length"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        min_words: int = Field(0, ge=0, description="Fewest words a rationale may have.")
        max_words: int = Field(400, ge=1, description="Most words a rationale may have.")

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Count the words of each rationale."""
        verdicts = []
        for record in records:
            words = len((record.rationale or "").split())
            ok = self.options.min_words <= words <= self.options.max_words
            bounds = f"[{self.options.min_words}, {self.options.max_words}]"
            verdicts.append(Verdict(score=float(words), passed=ok, reason=f"{words} words, bounds {bounds}"))
        return verdicts
