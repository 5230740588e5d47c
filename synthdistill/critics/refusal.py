"""refusal: Evol-Instruct's elimination of answers that refuse or say nothing (Xu et al. 2023, WizardLM).

WizardLM dropped an evolved instruction when the teacher's answer to it apologised ("sorry") and was short
(under 80 words), since the instruction was then too hard or ill-posed to answer, or when the answer held
only punctuation and stop words. This critic applies both rules to a record's answer, with "as an AI" and
"I cannot" among the refusal phrases besides "sorry".
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.records import Record, Verdict

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class Refusal(BaseCritic):
    """Fails a short answer that apologises or refuses, and one of only punctuation and stop words."""

    name = "refusal"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field("text", description="Field holding the answer (see field_text).")
        max_words: int = Field(
            80,
            ge=1,
            description="An answer with a refusal phrase fails when it has fewer words than this "
            "(WizardLM's 80); a longer one likely answers after a polite opening.",
        )
        phrases: list[str] = Field(
            default_factory=lambda: [
                "sorry",
                "as an ai",
                "i cannot",
                "i can't",
                "i am unable",
                "i'm unable",
                "i apologize",
                "i apologise",
            ],
            min_length=1,
            description="Phrases that mark a refusal or apology, matched as whole words ignoring case.",
        )

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Judge each record's answer by WizardLM's two rules."""
        # scikit-learn's English stop-word list (318 words), the well-kept one at hand; imported here since
        # sklearn costs a second to load.
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        phrases = [
            (phrase, re.compile(rf"(?<![a-z0-9]){re.escape(phrase.lower())}(?![a-z0-9])"))
            for phrase in self.options.phrases
        ]
        verdicts = []
        for record in records:
            # A curly apostrophe (U+2019, as in "I can\u2019t") counts as a straight one.
            text = field_text(record, self.options.field).lower().replace("\u2019", "'")
            words = _WORD.findall(text)
            # A contraction counts by its first part ("i'm" is "i").
            if all(word.split("'")[0] in ENGLISH_STOP_WORDS for word in words):
                verdicts.append(Verdict(score=0.0, passed=False, reason="only punctuation and stop words"))
                continue
            found = next((phrase for phrase, pattern in phrases if pattern.search(text)), None)
            if found is not None and len(words) < self.options.max_words:
                verdicts.append(
                    Verdict(
                        score=0.0,
                        passed=False,
                        reason=f"refuses or apologises ({found!r}) in {len(words)} words",
                    )
                )
                continue
            verdicts.append(Verdict(score=1.0, passed=True, reason=f"{len(words)} words, answers"))
        return verdicts
