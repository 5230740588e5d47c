"""choice_consistency: a multiple-choice rationale answers the choice it names.

A rationale that argues for one choice ("Of the above choices, only a train station is a place where a
bum would live.") and then answers another ("So the answer is (d) bridge.") taught nothing right, even
when the answer it lands on is the gold one. This critic finds the choices the rationale names as its
answer, after "only" ("only mandatory and compulsory are ...", "only deaf people ...") or "the closest
/ best / correct <word> is" ("the closest goal is to get in shape"), by text or letter, ignoring case,
articles and a plural "s", and fails the record when its answer is none of them: the multiple-choice
counterpart of `answer_rationale_consistency`. A rationale that names no choice passes unless
`require_named` says otherwise.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.parsing import choice_map, choice_text, fold
from synthdistill.records import Record, Verdict
from synthdistill.scoring.task import TaskConfig

# What introduces the choice a rationale settles on.
_CUE = re.compile(
    r"\bonly\s+|\b(?:closest|best|most\s+likely|most\s+suitable|most\s+appropriate|correct|right)\s+"
    r"(?:[a-z]+\s+)?(?:is|are|would\s+be)\s+",
    re.IGNORECASE,
)
# Where the phrase after a cue ends.
_CLAUSE_END = re.compile(r"[.;!?\n]")


class ChoiceConsistency(BaseCritic):
    """Passes a multiple-choice record whose rationale names its answer's choice (or names none)."""

    name = "choice_consistency"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field("rationale", description="Field holding the rationale.")
        answer_field: str = Field("answer", description="Field holding the answer.")
        require_named: bool = Field(
            False, description="Whether a rationale that names no choice as its answer fails."
        )

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Compare the choices each rationale names with the choice its answer names."""
        task = self.ctx.pipeline.config.data.task if self.ctx is not None else TaskConfig()
        verdicts = []
        for record in records:
            choices = record.input.get(task.choices_field)
            if not isinstance(choices, list | dict) or not choices:
                verdicts.append(Verdict(score=1.0, passed=True, reason="not a multiple-choice item"))
                continue
            rationale = field_text(record, self.options.field)
            answer = field_text(record, self.options.answer_field)
            verdicts.append(check_choice_consistency(rationale, answer, choices, self.options.require_named))
        return verdicts


def check_choice_consistency(
    rationale: str, answer: str, choices: list[str] | dict[str, str], require_named: bool = False
) -> Verdict:
    """The verdict on one rationale and answer (used by self_consistency for rationalised samples too)."""
    chosen = choice_text(answer, choices)
    if chosen is None:
        return Verdict(score=0.0, passed=False, reason=f"the answer {answer!r} names no choice")
    named = named_choices(rationale, choices)
    if not named:
        reason = "the rationale names no choice as its answer"
        return Verdict(score=0.0 if require_named else 1.0, passed=not require_named, reason=reason)
    if fold(chosen, articles=True) in {fold(text, articles=True) for text in named}:
        return Verdict(score=1.0, passed=True, reason=f"the rationale names {chosen!r}")
    shown = " and ".join(repr(text) for text in named)
    return Verdict(score=0.0, passed=False, reason=f"the rationale names {shown}, the answer is {chosen!r}")


def named_choices(rationale: str, choices: list[str] | dict[str, str]) -> list[str]:
    """The texts of the choices the rationale's last naming phrase names ("only X and Y ..."), in order."""
    letters = choice_map(choices)
    # Longest first, so "river bank" is read before "bank".
    texts = sorted(
        {fold(t, articles=True): t.strip() for t in letters.values()}.items(), key=lambda p: -len(p[0])
    )
    found: list[str] = []
    for cue in _CUE.finditer(rationale):
        clause = _CLAUSE_END.split(rationale[cue.end() :], maxsplit=1)[0]
        found = _list_at(fold(clause.replace(",", " and ")), texts, letters) or found
    return found


def _list_at(rest: str, texts: list[tuple[str, str]], letters: dict[str, str]) -> list[str]:
    """The choices listed at the start of `rest` ("train station", "mandatory and compulsory", "c ...")."""
    named: list[str] = []
    while True:
        rest = re.sub(r"^(?:(?:a|an|the|to)\s+)+", "", rest)
        found = _choice_at(rest, texts, letters)
        if found is None:
            return named
        text, length = found
        named.append(text)
        conjunction = re.match(r"\s*(?:and|or)\s+", rest[length:])
        if conjunction is None:
            return named
        rest = rest[length + conjunction.end() :]


def _choice_at(rest: str, texts: list[tuple[str, str]], letters: dict[str, str]) -> tuple[str, int] | None:
    """(choice text, characters read) of the choice `rest` starts with, plural "s" or "es" allowed, or its
    letter ("(c) train station" folds to "c train station"), or None."""
    for folded, text in texts:
        match = folded and re.match(rf"{re.escape(folded)}(?:es|s)?(?=\s|$)", rest)
        if match:
            return text, match.end()
    letter = re.match(r"([a-z])(?=\s|$)", rest)
    if letter is None or letter.group(1).upper() not in letters:
        return None
    text = letters[letter.group(1).upper()].strip()
    after = re.match(rf"\s+{re.escape(fold(text, articles=True))}(?=\s|$)", rest[letter.end() :])
    return text, letter.end() + (after.end() if after else 0)
