"""An example critic: drop rationales that hedge ("I think", "maybe", "not sure").

A critic is a class with a `name` and a `score(records)` method returning one Verdict per record.
Files in critics/ beside a pipeline, or in the project's critics/ folder, are found by the critic's
`name`, so a pipeline uses this one as `filter: {critics: [no_hedging]}`, or with options as
`{no_hedging: {words: [guess]}}`. Subclassing BaseCritic is optional: it validates the options
against the nested `Options` model and hands the stage context to `self.ctx` (teacher engines,
templates, the test split). Elsewhere, name a critic by dotted path (`mypackage.critics:NoHedging`)
or publish it under the entry-point group `synthdistill.critics`.
"""

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic
from synthdistill.records import Record, Verdict


class NoHedging(BaseCritic):
    """Fails a record whose rationale contains a hedging phrase."""

    name = "no_hedging"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        words: list[str] = Field(
            default_factory=lambda: ["i think", "maybe", "not sure", "probably"],
            description="Phrases that fail a rationale (lower case).",
        )

    def score(self, records: list[Record]) -> list[Verdict]:
        """One verdict per record, in order."""
        verdicts = []
        for record in records:
            text = (record.rationale or "").lower()
            found = [word for word in self.options.words if word in text]
            reason = f"hedges: {', '.join(found)}" if found else "no hedging"
            verdicts.append(Verdict(passed=not found, score=float(len(found)), reason=reason))
        return verdicts
