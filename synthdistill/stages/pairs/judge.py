"""The judge for the pairs stage: the llm_judge critic in pairwise mode, each pair asked in both orders.

A pair is kept only when both orders name the same winner: a tie in either order, a judge that prefers a
position (A in one order, B in the other) or an unusable judgment drops it, with the verdict kept so that a
reviewer sees why.
"""

from __future__ import annotations

from typing import Any

from synthdistill.critics import build_critic
from synthdistill.records import Record, Verdict, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.stages.pairs.candidates import Candidate

JUDGE = "llm_judge"
"""The critic that judges, and the name its verdict takes on a pair."""
# The judge's own options that the pairs stage sets itself.
FIXED = ("mode", "field", "against", "threshold")


def judge_options(options: dict[str, Any]) -> dict[str, Any]:
    """The llm_judge options for comparing pairs, over the stage's `judge` options; ValueError names a
    wrong one."""
    from pydantic import ValidationError

    from synthdistill.critics.llm_judge import LLMJudge

    fixed = sorted(set(options) & set(FIXED))
    if fixed:
        raise ValueError(f"judge.{fixed[0]} is set by the pairs stage (pairwise, both orders); remove it")
    full = {**options, "mode": "pairwise", "field": "input.first", "against": "input.second"}
    try:
        LLMJudge.Options(**full)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"judge.{key}: {error['msg']}") from None
    return full


def judge(
    pairs: list[tuple[Candidate, Candidate]], options: dict[str, Any], ctx: StageContext
) -> list[Verdict]:
    """For each (first, second) candidate pair, the judge's verdict: its score is the first's share of the
    two judgments (1 when it wins both orders, 0 when the second does), and it passes when the two orders
    agree on a winner."""
    if not pairs:
        return []
    critic = build_critic({JUDGE: judge_options(options)}, ctx)
    scratch = [
        Record(
            id=stable_hash(first.record.id, first.text, second.text),
            input={**first.record.input, "first": first.text, "second": second.text},
        )
        for first, second in pairs
    ]
    verdicts = []
    for (first, second), verdict in zip(pairs, critic.score(scratch), strict=True):
        decisive = verdict.score in (0.0, 1.0)
        verdicts.append(
            Verdict(
                score=verdict.score,
                passed=decisive,
                reason=f"{verdict.reason}; A is {first.label}, B is {second.label}",
            )
        )
    return verdicts
