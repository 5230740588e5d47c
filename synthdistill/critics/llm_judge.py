"""llm_judge: a teacher scores each record against a rubric template, through the engine.

mode `score`: the rubric (prompts/judge_score.j2 by default) asks for {"score": 1-10, "reason": ...};
a record passes at `threshold` (7 by default). mode `pairwise`: the record's field is compared with
another field (`against`, for example a student's answer), asked twice with the two answers in both
orders (prompts/judge_pairwise.j2), so that a judge biased to one position gives a tie; the record's
score is its share of the two judgments (win 1, tie 0.5, loss 0) and it passes at `threshold` (0.5).

The judge is the pipeline's teacher, a teacher of its own, or one of the pipeline's named `teachers:`
(`teacher: b`), so that one teacher reviews another's rationales (MAPD's peer review). Every call goes
through the engine (`ctx.engine(teacher)`), so it is cached, bounded and retried;
the answer is JSON validated by a pydantic model (a schema is sent where the backend takes one), and
an unparsable answer is asked for again when sampling is random, then fails the record with its reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthdistill.config import TeacherConfig
from synthdistill.critics import BaseCritic, field_text
from synthdistill.errors import CriticError
from synthdistill.records import Record, Verdict
from synthdistill.teachers.base import Request
from synthdistill.teachers.engine import Engine, ParseError
from synthdistill.templates import Templates

DEFAULT_TEMPLATES = {"score": "judge_score.j2", "pairwise": "judge_pairwise.j2"}
DEFAULT_THRESHOLDS = {"score": 7.0, "pairwise": 0.5}


class Judgment(BaseModel):
    """A rubric score of one record."""

    model_config = ConfigDict(extra="ignore")

    score: int = Field(ge=1, le=10, description="1 (wrong or incoherent) to 10 (right and clear).")
    reason: str = Field("", description="Why, in one sentence.")


class PairJudgment(BaseModel):
    """Which of two answers is better."""

    model_config = ConfigDict(extra="ignore")

    winner: Literal["A", "B", "tie"] = Field(description="The better answer, A or B, or tie.")
    reason: str = Field("", description="Why, in one sentence.")


class LLMJudge(BaseCritic):
    """Passes a record that a teacher, following a rubric, scores at or above the threshold."""

    name = "llm_judge"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        mode: Literal["score", "pairwise"] = Field(
            "score", description="Rate each record 1-10, or compare two of its fields in both orders."
        )
        template: str | None = Field(
            None, description="Rubric template; None means judge_score.j2 or judge_pairwise.j2."
        )
        field: str = Field("text", description="Field judged: text, rationale, answer, input.<key>, ...")
        against: str | None = Field(
            None, description="For pairwise: the field the record's `field` is compared with."
        )
        threshold: float | None = Field(
            None, description="Pass at this score or above; None means 7 (score) or 0.5 (pairwise)."
        )
        teacher: TeacherConfig | str | None = Field(
            None,
            description="A separate judge model: a teacher config, or the name of one of the pipeline's "
            "`teachers:` (peer review: one teacher judges another's rationale); None means the pipeline's "
            "teacher.",
        )
        temperature: float = Field(
            0.0,
            ge=0.0,
            le=2.0,
            description="Judge sampling temperature; above 0 unparsable answers are retried.",
        )
        max_tokens: int = Field(256, ge=16, description="Most tokens of a judgment.")
        parse_retries: int = Field(2, ge=0, le=10, description="Extra asks for an unparsable judgment.")

    options: Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options.mode == "pairwise" and self.options.against is None:
            raise CriticError(
                "critic 'llm_judge' in pairwise mode needs `against`, the field to compare with"
            )
        self.template = self.options.template or DEFAULT_TEMPLATES[self.options.mode]
        self.threshold = (
            DEFAULT_THRESHOLDS[self.options.mode]
            if self.options.threshold is None
            else self.options.threshold
        )

    def score(self, records: list[Record]) -> list[Verdict]:
        """Ask the judge about each record (twice per record in pairwise mode)."""
        if self.ctx is None:
            raise CriticError("critic 'llm_judge' needs the filter stage's context for its teacher")
        engine = self.ctx.engine(self.options.teacher)
        if self.options.mode == "pairwise":
            assert self.options.against is not None
            pairs = [
                (_variables(r, first=field_text(r, self.options.field)), field_text(r, self.options.against))
                for r in records
            ]
            return [
                Verdict(score=share, passed=share >= self.threshold, reason=reason)
                for share, reason in judge_pairs(
                    engine, self.ctx.templates, self.template, pairs, **self._call()
                )
            ]
        variables = [_variables(r, text=field_text(r, self.options.field)) for r in records]
        verdicts = []
        for judgment, error in judge_scores(
            engine, self.ctx.templates, self.template, variables, **self._call()
        ):
            if judgment is None:
                verdicts.append(Verdict(passed=False, reason=f"judge answer unusable: {error}"))
            else:
                verdicts.append(
                    Verdict(
                        score=float(judgment.score),
                        passed=judgment.score >= self.threshold,
                        reason=f"judge {judgment.score}/10: {judgment.reason}".strip(),
                    )
                )
        return verdicts

    def _call(self) -> dict[str, Any]:
        assert self.ctx is not None
        return {
            "temperature": self.options.temperature,
            "max_tokens": self.options.max_tokens,
            "parse_retries": self.options.parse_retries,
            "seed": self.ctx.seed,
        }


def judge_scores(
    engine: Engine,
    templates: Templates,
    template: str,
    variables: list[dict[str, Any]],
    **call: Any,
) -> Iterator[tuple[Judgment | None, str]]:
    """(judgment, "") or (None, error) for each set of template variables, in order."""
    # Payloads lead with the record, so a request that fails after every retry is logged with its id.
    items = ((v.get("record"), _request(templates, template, v, Judgment, call)) for v in variables)
    for _, samples in engine.map(items, json_parser(Judgment), parse_retries=call.get("parse_retries")):
        yield _first(samples, Judgment)


def judge_pairs(
    engine: Engine,
    templates: Templates,
    template: str,
    pairs: list[tuple[dict[str, Any], str]],
    **call: Any,
) -> list[tuple[float, str]]:
    """For each (variables with `first`, second answer): the first's share of two judgments, both orders.

    Win 1, tie 0.5, loss 0 in each order, averaged: a judge that always prefers one position gives
    0.5. Usable beyond the critic, for a judge win rate of a student against its teacher.
    """

    def requests() -> Iterator[tuple[tuple[Any, int, bool], Request]]:
        for i, (variables, second) in enumerate(pairs):
            record, first = variables.get("record"), variables["first"]
            in_order = {**variables, "second": second}
            yield (record, i, False), _request(templates, template, in_order, PairJudgment, call)
            swapped = {**variables, "first": second, "second": first}
            yield (record, i, True), _request(templates, template, swapped, PairJudgment, call)

    points: list[list[float]] = [[] for _ in pairs]
    notes: list[list[str]] = [[] for _ in pairs]
    for (_, i, swapped), samples in engine.map(
        requests(), json_parser(PairJudgment), parse_retries=call.get("parse_retries")
    ):
        judgment, error = _first(samples, PairJudgment)
        if judgment is None:
            points[i].append(0.5)
            notes[i].append(f"unusable ({error})")
            continue
        ours = "B" if swapped else "A"
        points[i].append(1.0 if judgment.winner == ours else 0.5 if judgment.winner == "tie" else 0.0)
        notes[i].append(judgment.winner if not swapped else {"A": "B", "B": "A"}.get(judgment.winner, "tie"))
    results = []
    for scores, note in zip(points, notes, strict=True):
        share = sum(scores) / len(scores)
        verdict = "wins" if share > 0.5 else "loses" if share < 0.5 else "ties"
        results.append((share, f"{verdict} after both orders (first order: {note[0]}, swapped: {note[1]})"))
    return results


def json_parser(model: type[BaseModel]) -> Callable[[str], dict[str, Any]]:
    """A parser for the engine: the first JSON object in the text, validated by `model`, else ParseError."""

    def parse(text: str) -> dict[str, Any]:
        # Models wrap JSON in code fences or a sentence; the object itself is what counts.
        found = re.search(r"\{.*\}", text, re.DOTALL)
        if found is None:
            raise ParseError(f"no JSON object in the judge's answer {text[:80]!r}")
        try:
            return model.model_validate(json.loads(found.group())).model_dump()
        except (json.JSONDecodeError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise ParseError(f"judge answer is not a valid {model.__name__}: {first}") from None

    return parse


def _request(
    templates: Templates,
    template: str,
    variables: dict[str, Any],
    model: type[BaseModel],
    call: dict[str, Any],
) -> Request:
    return Request(
        messages=templates.render_messages(template, variables),
        n=1,
        temperature=call.get("temperature", 0.0),
        max_tokens=call.get("max_tokens", 256),
        seed=call.get("seed"),
        json_schema=model.model_json_schema(),
    )


def _first(samples: list[Any], model: type[BaseModel]) -> tuple[Any, str]:
    if not samples:
        return None, "no answer"
    sample = samples[0]
    if sample.error is not None:
        return None, sample.error
    return model.model_validate(sample.fields), ""


def _variables(record: Record, **extra: str) -> dict[str, Any]:
    return {**record.input, "record": record, **extra}
