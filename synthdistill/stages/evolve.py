"""evolve: Evol-Instruct (Xu et al. 2023, WizardLM): the teacher rewrites each instruction into a harder one.

Each generation picks one operator per instruction, at random but repeatably (seeded by the run's seed, the
record's id and the generation), and asks the teacher to rewrite the instruction with it: five in-depth
operators make it harder (add constraints, deepen, concretize, increase reasoning steps, complicate the
input) and the in-breadth one writes a new instruction on a rarer topic of the same domain. Each operator
is a template, prompts/evol_<operator>.j2.

An evolution is eliminated, with its reason, when it is degenerate (growth.degenerate_reason: empty, too
short, only stop words, copies the prompt's words, or the same instruction), when its ROUGE-L F1 with the
instruction it came from is above `max_rouge_with_original` (no information gain), or, with
`equality_check`, when the teacher judges the two equal (prompts/evol_equal.j2, WizardLM's check). As in
WizardLM, a failed evolution returns its instruction to the pool: the next generation evolves it again.
WizardLM's other two rules judge the answer to an evolved instruction, so they are the `refusal` critic.

Per input, the outputs are the original (unless `keep_original` is off), then per generation the evolved
instruction, a record made by growth.grown that links it to the instruction it came from, or the
eliminated one, dropped by "evolve" with its reason so that review and inspect show why.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthdistill.config import MaxTokens, ParseRetries, Temperature, TopP
from synthdistill.critics.rouge import rouge_l, tokenize
from synthdistill.errors import StageError
from synthdistill.growth.instructions import degenerate_reason, grown, parse_instruction, seed_of
from synthdistill.records import Provenance, Record, Sample, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.teachers.base import Request
from synthdistill.teachers.engine import ParseError

Operator = Literal[
    "add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth"
]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
"""The six Evol-Instruct operators: five in depth, then the in-breadth one."""

EQUAL_TEMPLATE = "evol_equal.j2"

UNPARSABLE = "no instruction in the reply"
NO_GAIN = "no information gain (ROUGE-L with the instruction it came from)"
JUDGED_EQUAL = "no information gain (the teacher judged it equal)"
"""Reasons an evolution is eliminated, as counted in the manifest (with growth.degenerate_reason's)."""


class EvolveConfig(BaseModel):
    """Options of the evolve stage."""

    model_config = ConfigDict(extra="forbid")

    generations: int = Field(
        1,
        ge=1,
        le=16,
        description="Rounds of evolution; each evolves the previous round's surviving instruction "
        "(WizardLM ran 4).",
    )
    operators: list[Operator] = Field(
        default_factory=lambda: list(OPERATORS),
        min_length=1,
        description="Operators to pick from, uniformly at random per instruction and generation: "
        "add_constraints, deepen, concretize, increase_reasoning, complicate_input (in depth), breadth.",
    )
    # Sampling as in WizardLM's calls to ChatGPT: some randomness, so a failed evolution asked again
    # (under a new seed) can come out differently.
    temperature: Temperature = 0.7
    top_p: TopP = 0.95
    # An evolved instruction, with any input it adds.
    max_tokens: MaxTokens = 256
    parse_retries: ParseRetries = 1
    min_words: int = Field(3, ge=1, description="Fewest words an evolved instruction may have.")
    max_rouge_with_original: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Highest ROUGE-L F1 an evolved instruction may have with the one it came from; above "
        "it the evolution gained nothing and is eliminated. 1.0 turns the check off.",
    )
    equality_check: bool = Field(
        False,
        description="Whether to also ask the teacher if the two instructions are equal "
        "(prompts/evol_equal.j2) and eliminate those it calls Equal; one more request per survivor.",
    )
    keep_original: bool = Field(True, description="Whether each input instruction is passed on as well.")
    chunk_size: int | None = Field(
        None,
        ge=1,
        description="Instructions evolved together: a generation's requests for a chunk are in flight at "
        "once. None takes the teacher's max_concurrency.",
    )

    @field_validator("operators")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) < len(value):
            raise ValueError("operators repeats a name; list each operator once")
        return value


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Evolve each instruction for `generations` rounds; yield the original, the evolved, the eliminated."""
    config: EvolveConfig = ctx.config
    params = config.model_dump(include={"temperature", "top_p", "max_tokens", "equality_check"})
    provenance: dict[str, Provenance] = {
        operator: ctx.provenance(template_of(operator), params) for operator in config.operators
    }
    tally = _Tally(config.operators)
    evolver = _Evolver(ctx, config, provenance, tally)
    iterator = iter(records)
    while chunk := list(
        itertools.islice(iterator, config.chunk_size or ctx.pipeline.config.teacher.max_concurrency)
    ):
        yield from evolver.evolve(chunk)
    ctx.details.update(tally.summary())


def template_of(operator: str) -> str:
    """The template of an operator: evol_<operator>.j2."""
    return f"evol_{operator}.j2"


def pick_operator(operators: Sequence[str], seed: int, record_id: str, generation: int) -> str:
    """The operator for one record and generation: random, but the same on every run."""
    return random.Random(stable_hash(seed, record_id, generation)).choice(operators)


class _Ask(NamedTuple):
    """What an evolution request was made for (the input record first: failure reports read its id)."""

    record: Record
    chain: int
    operator: str
    generation: int


@dataclass
class _Chain:
    """One input instruction's evolution: the instruction to evolve next, what was made, what was asked."""

    original: Record
    current: Record
    outputs: list[Record] = field(default_factory=list)
    asked: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class _Outcome:
    """An evolution of one generation: its record and why it was eliminated (None when it survived)."""

    ask: _Ask
    record: Record
    reason: str | None
    count_as: str | None


class _Tally:
    """Counts per operator of evolutions asked, made and eliminated by reason, for the manifest."""

    def __init__(self, operators: Sequence[str]) -> None:
        self.inputs = 0
        self.equality_unclear = 0
        self.by_operator: dict[str, dict[str, Any]] = {
            operator: {"asked": 0, "made": 0, "eliminated": {}} for operator in operators
        }

    def add(self, outcome: _Outcome) -> None:
        entry = self.by_operator[outcome.ask.operator]
        entry["asked"] += 1
        if outcome.count_as is None:
            entry["made"] += 1
        else:
            entry["eliminated"][outcome.count_as] = entry["eliminated"].get(outcome.count_as, 0) + 1

    def summary(self) -> dict[str, Any]:
        reasons: Counter[str] = Counter()
        for entry in self.by_operator.values():
            reasons.update(entry["eliminated"])
        return {
            "inputs": self.inputs,
            "asked": sum(e["asked"] for e in self.by_operator.values()),
            "made": sum(e["made"] for e in self.by_operator.values()),
            "eliminated": sum(reasons.values()),
            "eliminated_by_reason": dict(sorted(reasons.items())),
            "equality_unclear": self.equality_unclear,
            "by_operator": self.by_operator,
        }


class _Evolver:
    """Evolves chunks of instructions, a generation at a time, through the stage's engine."""

    def __init__(
        self,
        ctx: StageContext,
        config: EvolveConfig,
        provenance: dict[str, Provenance],
        tally: _Tally,
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.provenance = provenance
        self.tally = tally
        self.engine = ctx.engine()

    def evolve(self, chunk: list[Record]) -> Iterator[Record]:
        """The outputs of a chunk of inputs, input by input, in order."""
        for record in chunk:
            if not str(record.input.get("question", "")).strip():
                raise StageError(
                    f"the record has no instruction in input.question (its input has "
                    f"{', '.join(sorted(record.input)) or 'no keys'}); map the instruction's column to "
                    "question in data.fields",
                    stage=self.ctx.spec.name,
                    record_id=record.id,
                )
        chains = [_Chain(original=record, current=record) for record in chunk]
        self.tally.inputs += len(chunk)
        for generation in range(1, self.config.generations + 1):
            outcomes = self._generation(chains, generation)
            if self.config.equality_check:
                self._check_equality([o for o in outcomes if o.reason is None])
            for outcome in outcomes:
                self.tally.add(outcome)
                chain = chains[outcome.ask.chain]
                record = _unique(outcome.record, chain, generation)
                if outcome.reason is None:
                    chain.current = record
                else:
                    record = record.drop("evolve", outcome.reason)
                chain.outputs.append(record)
        for chain in chains:
            source = chain.original.source_id
            if self.config.keep_original:
                yield chain.original
            for record in chain.outputs:
                yield record.model_copy(update={"source_id": source})

    def _generation(self, chains: list[_Chain], generation: int) -> list[_Outcome]:
        config = self.config
        asks = []
        for index, chain in enumerate(chains):
            operator = pick_operator(config.operators, self.ctx.seed, chain.original.id, generation)
            # A failed evolution's instruction is evolved again; when the operator is the same too, a new
            # seed makes it a new request instead of the cached failure.
            attempt = chain.asked[(chain.current.id, operator)]
            chain.asked[(chain.current.id, operator)] += 1
            variables = {**chain.current.input, "record": chain.current}
            request = Request(
                messages=self.ctx.templates.render_messages(template_of(operator), variables),
                n=1,
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_tokens,
                seed=self.ctx.seed + attempt,
            )
            asks.append((_Ask(chain.original, index, operator, generation), request))
        answers = self.engine.map(asks, parse_instruction, parse_retries=config.parse_retries)
        return [self._judge(ask, chains[ask.chain].current, samples) for ask, samples in answers]

    def _judge(self, ask: _Ask, seed: Record, samples: list[Sample]) -> _Outcome:
        """The evolved record made from `seed`, and why it is eliminated, if it is."""
        provenance = [*seed.provenance, self.provenance[ask.operator]]
        good = [s for s in samples if s.error is None]
        if not good:
            errors = "; ".join(sorted({s.error or "" for s in samples})) or "no sample"
            record = grown(seed, {"question": ""}, ask.operator, ask.generation)
            record = record.model_copy(update={"samples": samples, "provenance": provenance})
            return _Outcome(ask, record, f"{UNPARSABLE}: {errors}", UNPARSABLE)
        fields = dict(good[0].fields)
        record = grown(seed, fields, ask.operator, ask.generation)
        record = record.model_copy(update={"samples": samples, "provenance": provenance})
        original = str(seed.input["question"])
        degenerate = degenerate_reason(fields["question"], original, self.config.min_words)
        if degenerate is not None:
            return _Outcome(ask, record, degenerate, degenerate)
        score = rouge_l(tokenize(fields["question"]), tokenize(original))
        if score > self.config.max_rouge_with_original:
            reason = f"{NO_GAIN}: {score:.3f} > {self.config.max_rouge_with_original}"
            return _Outcome(ask, record, reason, NO_GAIN)
        return _Outcome(ask, record, None, None)

    def _check_equality(self, survivors: list[_Outcome]) -> None:
        """Eliminate the survivors that the teacher judges equal to the instruction they came from."""
        requests = (
            (
                outcome,
                Request(
                    messages=self.ctx.templates.render_messages(
                        EQUAL_TEMPLATE,
                        {
                            "original": (seed_of(outcome.record) or {}).get("question", ""),
                            "evolved": outcome.record.input["question"],
                        },
                    ),
                    n=1,
                    # A judgement, not a creation: greedy, and a few tokens hold "Not Equal".
                    temperature=0.0,
                    max_tokens=8,
                    seed=self.ctx.seed,
                ),
            )
            for outcome in survivors
        )
        for outcome, samples in self.engine.map(requests, _parse_equality):
            judged = [s for s in samples if s.error is None]
            if not judged:
                # An unclear judgement eliminates nothing: the other checks already passed it.
                self.tally.equality_unclear += 1
                continue
            if judged[0].fields["equal"]:
                outcome.reason = f"{JUDGED_EQUAL}: {judged[0].text.strip()[:40]!r}"
                outcome.count_as = JUDGED_EQUAL


def _parse_equality(text: str) -> dict[str, Any]:
    """The teacher's "Equal" / "Not Equal" as {equal: bool}."""
    words = re.findall(r"[a-z]+", text.lower())
    for first, second in itertools.pairwise(["", *words]):
        if second == "equal":
            return {"equal": first != "not"}
    raise ParseError("neither Equal nor Not Equal in the reply")


def _unique(record: Record, chain: _Chain, generation: int) -> Record:
    """The record, with an id no other output of its input has: an instruction evolved again with the same
    operator can come back the same (greedy sampling), and two records of one stage never share an id."""
    taken = {chain.original.id, *(r.id for r in chain.outputs)}
    if record.id not in taken:
        return record
    return record.model_copy(update={"id": stable_hash(record.id, generation)})


def _inputs(config: EvolveConfig) -> list[str]:
    templates = [template_of(operator) for operator in config.operators]
    return [*templates, EQUAL_TEMPLATE] if config.equality_check else templates


STAGE = Stage(
    name="evolve",
    config=EvolveConfig,
    run=run,
    summary="Evolve instructions into harder and new ones with Evol-Instruct's operators (WizardLM).",
    inputs=_inputs,
    uses=("teacher",),
    variables=lambda config: {"record", "original", "evolved"},
    adds=lambda config: {"question"},
)
