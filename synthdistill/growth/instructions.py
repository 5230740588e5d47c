"""Growing an instruction pool: new instructions made from old ones, their lineage, novelty and sanity.

The adversarial stage (Lion), evolve (Evol-Instruct) and self_instruct (Self-Instruct) all ask a
teacher for new instructions modelled on existing ones. They share what is here:

- `grown`: the record of a new instruction, linked to the instruction that seeded it (its `parent_id`
  and `input.seed`), so every generated item can be traced back;
- `parse_instruction`: reads a teacher's new instruction, and for verifiable tasks the arithmetic
  expression that solves it, whose value (from the restricted evaluator in expressions.py, never eval)
  becomes the gold answer;
- `Novelty`: Self-Instruct's and Lion's diversity filter, ROUGE-L (at most 0.7) and embedding cosine
  against the pool and against each other;
- `degenerate_reason`: Evol-Instruct's elimination of instructions that are empty, copy the prompt, or
  hold nothing but punctuation and stop words.
"""

from __future__ import annotations

import re
from typing import Any

from synthdistill.growth.expressions import ExpressionError, as_answer, evaluate
from synthdistill.records import Record, stable_hash
from synthdistill.teachers.engine import ParseError

SEED_KEY = "seed"
"""Input key of a grown record holding {id, question, operator, round} of the instruction it came from."""

# Labels a teacher puts before the parts of a new instruction ("New problem:", "#Rewritten Prompt#:").
_LABEL = (
    r"(?:#+\s*)?(?:new|rewritten|created|harder|easier|given)?\s*"
    r"(?:problem|question|instruction|prompt|task)\s*#*\s*:"
)
_QUESTION = re.compile(rf"^\s*\**\s*{_LABEL}\s*\**", re.IGNORECASE | re.MULTILINE)
_EXPRESSION = re.compile(
    r"^\s*\**\s*(?:expression|equation|calculation)\s*\**\s*:\s*(?P<expr>[^\n]+)", re.I | re.M
)
_ANSWER = re.compile(r"^\s*\**\s*(?:answer|solution)\s*\**\s*:", re.IGNORECASE | re.MULTILINE)
_STOP_WORDS = frozenset(
    {
        *("a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in"),
        *("is", "it", "of", "on", "or", "so", "that", "the", "this", "to", "what", "which", "who", "why"),
        *("with", "you", "your"),
    }
)
# Words that show the teacher talked about the prompt instead of writing a new instruction (Evol-Instruct
# eliminated evolutions that copy "#Rewritten Prompt#" or "given prompt").
_PROMPT_TALK = re.compile(
    r"#\s*(?:given|rewritten|created)\s+prompt\s*#|\b(?:given|rewritten|created) prompt\b", re.I
)


def grown(seed: Record, fields: dict[str, Any], operator: str, round: int | None = None) -> Record:
    """The record of a new instruction (`fields`, with its `question`) made from `seed` by `operator`."""
    lineage = {
        "id": seed.id,
        "question": str(seed.input.get("question", "")),
        "operator": operator,
        "round": round,
    }
    inputs = {**fields, SEED_KEY: lineage}
    return Record(id=stable_hash(seed.id, fields, operator), parent_id=seed.id, input=inputs)


def seed_of(record: Record) -> dict[str, Any] | None:
    """The lineage of a grown record ({id, question, operator, round}), or None for an original item."""
    value = record.input.get(SEED_KEY)
    return value if isinstance(value, dict) else None


def parse_instruction(text: str) -> dict[str, Any]:
    """The new instruction in a teacher's reply: `question`, and `expression` and `answer` when it gives one.

    The question is what follows a label such as "New problem:" (or the whole reply without one), up to an
    "Expression:" or "Answer:" line. An expression is evaluated exactly by the restricted evaluator and its
    value is the gold `answer`; one that is not plain arithmetic is a parse error, so the sample is retried
    or dropped with the reason, never trusted.
    """
    body = text.strip()
    labelled = list(_QUESTION.finditer(body))
    if labelled:
        body = body[labelled[-1].end() :]
    expression = _EXPRESSION.search(body)
    end = min([m.start() for m in (expression, _ANSWER.search(body)) if m is not None] + [len(body)])
    question = _clean(body[:end])
    if not question:
        raise ParseError("no instruction in the reply")
    fields: dict[str, Any] = {"question": question}
    if expression is not None:
        written = expression.group("expr").strip().strip("`$ ").rstrip(".")
        # "3 * 4 = 12": the teacher's own result is not trusted; the evaluator computes it.
        written = written.split("=")[0].strip()
        try:
            value = evaluate(written)
        except ExpressionError as exc:
            raise ParseError(f"expression: {exc}") from None
        fields["expression"] = written
        fields["answer"] = as_answer(value)
    return fields


def degenerate_reason(question: str, original: str | None = None, min_words: int = 3) -> str | None:
    """Why an instruction is unusable (empty, too short, only stop words, talks about the prompt, or the
    same as `original` up to case and spacing), or None when it is fine."""
    words = re.findall(r"[a-z0-9]+", question.lower())
    if len(words) < min_words:
        return f"fewer than {min_words} words"
    if all(word in _STOP_WORDS for word in words):
        return "only stop words and punctuation"
    if _PROMPT_TALK.search(question):
        return "copies words of the prompt (given/rewritten prompt)"
    if original is not None and words == re.findall(r"[a-z0-9]+", original.lower()):
        return "the same as the instruction it came from"
    return None


class Novelty:
    """Keeps only instructions unlike the pool and each other: ROUGE-L F1 at most `rouge_l` (Self-Instruct's
    0.7) and, when `embedding` is set, cosine at most `embedding` in all-MiniLM-L6-v2 space (Lion's check)."""

    def __init__(
        self, rouge_l: float = 0.7, embedding: float | None = 0.9, field: str = "input.question"
    ) -> None:
        from synthdistill.critics.dedup import NearDup

        self.critics = [NearDup(method="rouge_l", threshold=rouge_l, field=field)]
        if embedding is not None:
            self.critics.append(NearDup(method="embedding", threshold=embedding, field=field))

    def remember(self, records: list[Record]) -> None:
        """Add the pool's instructions (kept without being judged)."""
        if records:
            for critic in self.critics:
                critic.remember(records)

    def check(self, records: list[Record]) -> list[str | None]:
        """For each new record in order, why it is not novel, or None; novel ones join the pool."""
        reasons: list[str | None] = [None] * len(records)
        for critic in self.critics:
            open_ = [i for i, reason in enumerate(reasons) if reason is None]
            if not open_:
                break
            verdicts = critic.score([records[i] for i in open_])
            for i, verdict in zip(open_, verdicts, strict=True):
                if not verdict.passed:
                    reasons[i] = verdict.reason
        return reasons


def _clean(text: str) -> str:
    """The instruction without surrounding quotes, markdown emphasis and blank lines."""
    lines = [line.strip() for line in text.strip().splitlines()]
    text = " ".join(line for line in lines if line)
    return text.strip().strip("*\"'`").strip()
