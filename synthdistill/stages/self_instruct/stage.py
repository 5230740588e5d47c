"""self_instruct: Self-Instruct bootstrapping (Wang et al., 2023), new tasks grown from a few seed tasks.

The stage takes every seed task at once (question = the instruction, `instances` = [{input, output}],
`is_classification`; seeds.py) and loops, as the paper's released code does:

1. Generation (generate.py): each prompt lists 8 in-context instructions (6 seeds and 2 instructions kept
   so far, fewer of those while there are not 2 yet), shuffled, numbered, and left open at the next number
   (`self_instruct_generate.j2`); the teacher continues the list.
2. Filtering (filters.py): a new instruction is dropped, with the reason, when it has too few or too many
   words, names something a text model cannot handle (image, graph, file, ...), starts with punctuation or
   a non-ASCII character, is degenerate (growth.degenerate_reason), or is not novel: ROUGE-L above 0.7
   against a seed, an instruction kept before, or one earlier in its wave (growth.Novelty).
3. Classification identification (classify.py): the teacher says Yes or No after few-shot seeds
   (`self_instruct_classify.j2`).
4. Instance generation (instances.py): output first for classification tasks (each class label, then an
   input for it, `self_instruct_output_first.j2`), input first for the others
   (`self_instruct_input_first.j2`); an instruction whose reply holds no usable instance is dropped with
   the reason.

Requests go in waves of up to the engine's concurrency; every prompt of a wave samples from the pool as
it stood when the wave began, with a random generator seeded by the pipeline's seed and the prompt's
number, so a re-run replays each prompt from the call cache. The loop ends once `target` instructions
are kept or `max_requests` prompts were sent.

Each new instruction becomes a record made by `growth.grown` from the first seed among its in-context
examples: input {question (the instruction, and the first instance's input), instruction, instances,
is_classification, examples (ids of the 8 in-context instructions)}, `answer` the first instance's
output. Dropped candidates are written too, as dropped records with their reason.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthdistill.config import MaxTokens, Temperature, TopP
from synthdistill.errors import StageError
from synthdistill.growth.instructions import Novelty, grown
from synthdistill.records import Record
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.stages.self_instruct.candidate import OPERATOR, Candidate
from synthdistill.stages.self_instruct.classify import CLASSIFY, classify
from synthdistill.stages.self_instruct.filters import BLACKLIST, drop_rejected, probe
from synthdistill.stages.self_instruct.generate import draw_prompt, generate
from synthdistill.stages.self_instruct.instances import add_instances
from synthdistill.stages.self_instruct.seeds import Seed, handed_on, read_seed
from synthdistill.stages.self_instruct.shots import Shots


class SelfInstructConfig(BaseModel):
    """Options of the self_instruct stage."""

    model_config = ConfigDict(extra="forbid")

    # How much to grow.
    target: int = Field(100, ge=1, description="New instructions to keep; the loop stops once it has them.")
    max_requests: int = Field(
        1000,
        ge=1,
        description="Most generation prompts to send; the loop stops there even short of `target`.",
    )
    per_request: int = Field(8, ge=1, le=64, description="New instructions asked for in each prompt.")
    keep_seeds: bool = Field(
        False,
        description="Whether the seed tasks are handed on too (as the paper's --include_seed_tasks), in "
        "the same shape as the new ones.",
    )

    # In-context examples: the paper's 8 a prompt, 6 written by people and 2 generated.
    seed_examples: int = Field(6, ge=1, le=32, description="Seed instructions shown in each prompt.")
    generated_examples: int = Field(
        2,
        ge=0,
        le=32,
        description="Instructions kept so far shown in each prompt; seeds fill their places until there "
        "are that many.",
    )

    # Sampling of the generation prompt: the paper's temperature 0.7 and top_p 0.5.
    temperature: Temperature = 0.7
    top_p: TopP = 0.5
    max_tokens: MaxTokens = 1024

    # Filters.
    min_words: int = Field(3, ge=1, description="Fewer words than this drops an instruction.")
    max_words: int = Field(150, ge=1, description="More words than this drops an instruction.")
    blacklist: list[str] = Field(
        default_factory=lambda: list(BLACKLIST),
        description="Words (or phrases) whose presence drops an instruction, matched as whole words in any "
        "case; the default is the paper's list of things a text model cannot handle.",
    )
    rouge_l: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="Drop an instruction whose ROUGE-L F1 against a seed or a kept one is above this.",
    )
    embedding: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Also drop one whose all-MiniLM-L6-v2 cosine to a seed or a kept one is above this; "
        "None checks ROUGE-L alone, as the paper did.",
    )

    # Classification identification and instances.
    classify_examples: int = Field(
        12,
        ge=0,
        le=64,
        description="Seed tasks shown (half Yes, half No where possible) when asking "
        "whether a task is classification.",
    )
    instance_examples: int = Field(
        4, ge=0, le=32, description="Seed tasks of the same kind whose instances are shown as examples."
    )
    max_instances: int = Field(
        5, ge=1, le=32, description="Most instances kept per instruction (the paper's 5)."
    )
    instance_max_tokens: int = Field(
        350, ge=1, description="Most new tokens of an instance reply (the paper's 300 to 350)."
    )

    # Templates.
    generate_template: str = Field(
        "self_instruct_generate.j2", description="Template asking for new instructions."
    )
    classify_template: str = Field(
        "self_instruct_classify.j2", description="Template asking whether a task is classification."
    )
    output_first_template: str = Field(
        "self_instruct_output_first.j2", description="Template for instances of classification tasks."
    )
    input_first_template: str = Field(
        "self_instruct_input_first.j2", description="Template for instances of the other tasks."
    )

    @model_validator(mode="after")
    def _words(self) -> SelfInstructConfig:
        if self.min_words > self.max_words:
            raise ValueError(
                f"min_words ({self.min_words}) is above max_words ({self.max_words}); lower min_words"
            )
        return self


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Grow new instructions from the seed tasks until `target` are kept or `max_requests` are sent."""
    config: SelfInstructConfig = ctx.config
    seeds = [read_seed(record, ctx.spec.name) for record in records]
    if not seeds:
        raise StageError(
            "no seed tasks came in; point data.source at a seed file (pipelines/seeds/seed_tasks.jsonl)",
            stage=ctx.spec.name,
        )
    if config.keep_seeds:
        for seed in seeds:
            yield handed_on(seed)
    loop = _Bootstrap(config, ctx, seeds)
    yield from loop.run()
    ctx.details.update(loop.details())


class _Bootstrap:
    """The loop's state: the pool of kept instructions, the novelty index, the counts."""

    def __init__(self, config: SelfInstructConfig, ctx: StageContext, seeds: list[Seed]) -> None:
        self.config = config
        self.ctx = ctx
        self.seeds = seeds
        self.engine = ctx.engine()
        self.pool: list[Record] = []
        self.sent = 0
        self.wave = 0
        self.candidates = 0
        self.classification = 0
        self.dropped: Counter[str] = Counter()
        self.failed_requests = 0
        self.unclear = 0
        # Instructions by the id the novelty index knows them by, so a near-duplicate's reason can name the
        # record a reviewer can find (the seed, or the kept instruction's own record).
        self.named: dict[str, str] = {}
        self.yielded: set[str] = set()
        self.novelty = Novelty(rouge_l=config.rouge_l, embedding=config.embedding)
        self.novelty.remember([probe(seed.record.id, seed.instruction) for seed in seeds])
        self.shots = Shots(config, seeds, ctx.seed)
        generation = {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
        }
        instances = {"temperature": 0.0, "max_tokens": config.instance_max_tokens}
        self.provenance = {
            name: ctx.provenance(name, params)
            for name, params in (
                (config.generate_template, generation),
                (config.classify_template, {"temperature": 0.0, "max_tokens": CLASSIFY.max_tokens}),
                (config.output_first_template, instances),
                (config.input_first_template, instances),
            )
        }

    def run(self) -> Iterator[Record]:
        config = self.config
        while self.kept < config.target and self.sent < config.max_requests:
            self.wave += 1
            size = min(self.engine.max_concurrency, config.max_requests - self.sent, self._need())
            prompts = [
                draw_prompt(self.sent + i, self.wave, self.pool, self.seeds, config, self.ctx.seed)
                for i in range(size)
            ]
            self.sent += size
            candidates, failed = generate(prompts, config, self.ctx, self.engine)
            self.failed_requests += failed
            self.candidates += len(candidates)
            drop_rejected(candidates, config, self.novelty)
            self.unclear += classify(
                [c for c in candidates if c.reason is None], config, self.ctx, self.engine, self.shots
            )
            add_instances(
                [c for c in candidates if c.reason is None], config, self.ctx, self.engine, self.shots
            )
            made = [self._record(c) for c in candidates]
            for candidate, record in zip(candidates, made, strict=True):
                self.named[candidate.probe_id] = record.id
            for candidate, record in zip(candidates, made, strict=True):
                record = self._renamed(record)
                if record.kept:
                    self.pool.append(record)
                    self.classification += bool(candidate.is_classification)
                if record.id in self.yielded:
                    # The same candidate twice in one reply: the same record, written once.
                    continue
                self.yielded.add(record.id)
                yield record
            self.ctx.log.info(
                "wave %d: %d prompts, %d candidates, %d kept so far",
                self.wave,
                size,
                len(candidates),
                self.kept,
            )

    @property
    def kept(self) -> int:
        return len(self.pool)

    def details(self) -> dict[str, Any]:
        stopped = "target" if self.kept >= self.config.target else "max_requests"
        return {
            "prompts_sent": self.sent,
            "waves": self.wave,
            "candidates": self.candidates,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "classification_share": round(self.classification / self.kept, 4) if self.kept else None,
            "classification_unclear": self.unclear,
            "failed_requests": self.failed_requests,
            "stopped_by": stopped,
        }

    def _need(self) -> int:
        """Prompts the target still needs at the yield seen so far (at full yield before any was seen).

        Sending fewer than that would leave the teacher idle between waves; sending more would pay for
        instructions past the target.
        """
        per_prompt = self.kept / self.sent if self.sent else float(self.config.per_request)
        if per_prompt == 0:
            return self.config.max_requests
        return math.ceil((self.config.target - self.kept) / per_prompt)

    def _record(self, candidate: Candidate) -> Record:
        instruction = candidate.instruction
        first = candidate.instances[0] if candidate.instances else None
        question = f"{instruction}\n\n{first['input']}" if first and first["input"] else instruction
        fields = {
            "question": question,
            "instruction": instruction,
            "instances": candidate.instances,
            "is_classification": candidate.is_classification,
            "examples": [record.id for record in candidate.prompt.examples],
        }
        record = grown(candidate.prompt.seed, fields, operator=OPERATOR, round=candidate.prompt.wave)
        record = record.model_copy(
            update={
                "source_id": candidate.prompt.seed.id,
                "answer": first["output"] if first else None,
                "samples": candidate.samples,
                "provenance": [self.provenance[name] for name in candidate.templates],
            }
        )
        if candidate.reason is None:
            return record
        kind, why = candidate.reason
        self.dropped[kind] += 1
        return record.drop(self.ctx.spec.name, why)

    def _renamed(self, record: Record) -> Record:
        """A dropped near-duplicate's reason naming the kept instruction's record, not its probe."""
        verdict = record.verdicts.get(self.ctx.spec.name)
        if verdict is None:
            return record
        reason = re.sub(
            r"record (\w+)", lambda m: f"record {self.named.get(m.group(1), m.group(1))}", verdict.reason
        )
        if reason == verdict.reason:
            return record
        verdicts = {**record.verdicts, self.ctx.spec.name: verdict.model_copy(update={"reason": reason})}
        return record.model_copy(update={"verdicts": verdicts})


STAGE = Stage(
    name="self_instruct",
    config=SelfInstructConfig,
    run=run,
    summary="Grow new tasks from seed tasks (Self-Instruct): instructions, classification, instances.",
    inputs=lambda config: [
        config.generate_template,
        config.classify_template,
        config.output_first_template,
        config.input_first_template,
    ],
    batch_input=True,
    uses=("teacher",),
    variables=lambda config: {"examples", "instruction", "count", "instructions"},
    adds=lambda config: {"question", "instances", "is_classification"},
    makes_outputs=True,
)
